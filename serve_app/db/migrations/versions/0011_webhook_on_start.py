"""Webhooks on start: ``jobs.webhook_on_start`` asks for a ``job.started`` delivery each time an attempt starts,
written to the outbox in the transaction that starts it (the terminal delivery is written as before).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the flag (false for every existing job)."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("webhook_on_start", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    """Drop the flag."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("webhook_on_start")
