"""Jobs keep a result document and their error as data; ``jobs.request_hash`` becomes ``body_hash``.

``jobs.request_hash`` was never the cache key the API reports (that is ``payload.request_hash``): it is the
hash of the HTTP body that an ``Idempotency-Key`` replay is compared with, so it is renamed ``body_hash``.
``jobs.result`` holds ``{"images": [...], "data": {...}}`` (a job may make several images and a JSON
document); ``error_type`` and ``error_param`` record a failure's stable type and the field at fault.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Rename ``request_hash`` to ``body_hash``; add ``result``, ``error_type`` and ``error_param``."""
    with op.batch_alter_table("jobs") as batch:  # batch mode: SQLite cannot ALTER most things in place
        batch.drop_index(batch.f("ix_jobs_request_hash"))
        batch.alter_column("request_hash", new_column_name="body_hash", existing_type=sa.String(length=64))
    # A second batch: the first one's table copy does not know the new column name yet.
    with op.batch_alter_table("jobs") as batch:
        batch.create_index(batch.f("ix_jobs_body_hash"), ["body_hash"], unique=False)
        batch.add_column(sa.Column("result", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("error_type", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("error_param", sa.String(length=255), nullable=True))


def downgrade() -> None:
    """Back to ``request_hash``, without results or error data."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("error_param")
        batch.drop_column("error_type")
        batch.drop_column("result")
        batch.drop_index(batch.f("ix_jobs_body_hash"))
        batch.alter_column("body_hash", new_column_name="request_hash", existing_type=sa.String(length=64))
    with op.batch_alter_table("jobs") as batch:
        batch.create_index(batch.f("ix_jobs_request_hash"), ["request_hash"], unique=False)
