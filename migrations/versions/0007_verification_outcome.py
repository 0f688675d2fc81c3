"""verification outcome

A replay is "identical" (the logits bit for bit), "equivalent" (another machine or device:
every prediction and metric value the same, the weights proven unchanged) or "changed".
Evaluations recorded before say only whether they passed (``identical``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("outcome")
