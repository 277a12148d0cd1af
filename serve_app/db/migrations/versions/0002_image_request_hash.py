"""Images remember the request hash that made them, so a re-run job finds its earlier image.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``images.request_hash`` with an index."""
    with op.batch_alter_table("images") as batch:  # batch mode: SQLite cannot ALTER most things in place
        batch.add_column(sa.Column("request_hash", sa.String(length=80), nullable=True))
        batch.create_index(batch.f("ix_images_request_hash"), ["request_hash"], unique=False)


def downgrade() -> None:
    """Drop ``images.request_hash``."""
    with op.batch_alter_table("images") as batch:
        batch.drop_index(batch.f("ix_images_request_hash"))
        batch.drop_column("request_hash")
