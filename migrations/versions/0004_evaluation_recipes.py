"""evaluation recipes

Every evaluation records the recipe it ran under (device class and model, library versions,
batch size, threads), so that two evaluations are compared bit for bit only when their recipes
match. Evaluations recorded before have none: they ran on the CPU, in fp32.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipe", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("recipe")
