"""removed tasks and deleted artifacts

A removed task keeps its row with ``removed_at`` set and no position, and its name becomes free
for a new task (unique among active tasks only); gc marks the artifacts whose files it deleted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 17:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ACTIVE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column("position", existing_type=sa.Integer(), nullable=True)
        batch_op.drop_constraint("uq_tasks_name", type_="unique")
    op.create_index(
        "ux_tasks_active_name",
        "tasks",
        ["name"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
    op.drop_index("ux_tasks_active_name", table_name="tasks")
    op.execute("DELETE FROM tasks WHERE removed_at IS NOT NULL")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_tasks_name", ["name"])
        batch_op.alter_column("position", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("removed_at")
