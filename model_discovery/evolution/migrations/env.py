"""Runs the store's migrations on the connection that ``model_discovery.evolution.store.migrate`` opened: its
transaction holds the migration lock, so nothing here commits.

Migrations only go forward: a store is never downgraded, and a newer store refuses to open in an older version.
To add a revision, change the models in store/rows.py, then let Alembic write the difference against a scratch store::

    from alembic import command
    from sqlalchemy import create_engine
    from model_discovery.evolution.store import alembic_config, migrate

    engine = create_engine("sqlite:////tmp/scratch.db")
    migrate(engine)
    with engine.begin() as connection:
        command.revision(alembic_config(connection), "what changed", autogenerate=True, rev_id="0002")
"""

from alembic import context

from model_discovery.evolution.store import Base

context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
