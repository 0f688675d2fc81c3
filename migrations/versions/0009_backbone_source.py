"""backbone source

A backbone given as a GGUF file is converted once into the workspace; the ledger records the
file it came from (path, sha256, quantisation). Backbones recorded before were loaded as given.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 18:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backbones", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backbones", schema=None) as batch_op:
        batch_op.drop_column("source")
