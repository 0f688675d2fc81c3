"""task kinds

Each task records its kind (``contlearn.kinds``: classification, regression, ...). Tasks
registered before read as what they recorded as their problem type.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(32), nullable=False, server_default="classification")
        )
    op.execute("UPDATE tasks SET kind = 'regression' WHERE problem_type = 'regression'")


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("kind")
