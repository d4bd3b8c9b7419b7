"""Every design is a unit tree: ``designs.tree`` replaces ``designs.genome``.

Each stored design gets the tree its composed source parses into (a reference design whose file equals the
library's gets the library's tree, with its units' declarations); the genome column, which only designs of the
offline designer had, goes.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from model_discovery.design import compose
from model_discovery.design.library import design_names, library_tree
from model_discovery.design.parse import parse_design

revision = "0002"
down_revision = "0001"


def _tree(name: str, status: str, source: str) -> dict:
    if status == "reference" and name in design_names():
        tree = library_tree(name)
        if compose(tree) == source:
            return tree.model_dump(mode="json")
    try:
        return parse_design(source, name).model_dump(mode="json")
    except (SyntaxError, ValueError) as exc:
        raise RuntimeError(f"migrating the store to revision 0002 (unit trees): design {name!r} does not parse into "
                           f"units ({exc}); move the run away or fix its source.") from exc


def upgrade() -> None:
    op.add_column("designs", sa.Column("tree", sa.JSON(), nullable=True))
    designs = sa.table("designs", sa.column("id", sa.Integer), sa.column("name", sa.String),
                       sa.column("status", sa.String), sa.column("source", sa.Text), sa.column("tree", sa.JSON))
    connection = op.get_bind()
    rows = connection.execute(sa.select(designs.c.id, designs.c.name, designs.c.status, designs.c.source)).all()
    for id_, name, status, source in rows:
        connection.execute(designs.update().where(designs.c.id == id_).values(tree=_tree(name, status, source)))
    with op.batch_alter_table("designs") as batch:
        batch.alter_column("tree", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("genome")
