"""backbone dtype

The backbone's weights can be loaded in bf16 or fp16 (``init --backbone-dtype``); the ledger
records the dtype its fingerprint was taken in. Backbones recorded before were loaded in fp32.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 22:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backbones", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("dtype", sa.String(16), nullable=False, server_default="float32")
        )


def downgrade() -> None:
    with op.batch_alter_table("backbones", schema=None) as batch_op:
        batch_op.drop_column("dtype")
