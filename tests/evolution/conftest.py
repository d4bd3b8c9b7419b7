import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh store: a SQLite file, or a fresh database on the PostgreSQL test server."""
    if request.param == "sqlite":
        return str(tmp_path)
    return request.getfixturevalue("postgres_url")
