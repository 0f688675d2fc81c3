"""verification mode

``train-next`` verifies earlier tasks fully (every dev example re-evaluated) or by a probe
(hashes, and a seeded sample of dev batches); each evaluation says which. Evaluations recorded
before were full.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("mode")
