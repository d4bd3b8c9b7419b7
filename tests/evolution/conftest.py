import os

import pytest
from sqlalchemy import create_engine, text

from model_discovery.evolution.store import Base

POSTGRES = os.environ.get("MODIS_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh store: a SQLite file, and the PostgreSQL server `.ci/run` starts on 127.0.0.1."""
    if request.param == "sqlite":
        return str(tmp_path)
    if not POSTGRES:
        pytest.skip("no PostgreSQL server: set MODIS_TEST_POSTGRES_URL (.ci/run starts one with scripts/postgres.sh)")
    engine = create_engine(POSTGRES)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))  # the schema revision the store is at
    engine.dispose()
    return POSTGRES
