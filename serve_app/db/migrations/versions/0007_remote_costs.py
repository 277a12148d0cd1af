"""Remote backends: which backend drew each image and job, what it cost, and a ledger of every paid call.

- ``jobs``: ``backend`` (what ran the last attempt: ``local``, ``fal``...), ``cost_usd`` (the sum of its remote calls).
- ``images``: ``backend`` and ``cost_usd`` (what that image cost on a paid API).
- ``remote_calls``: one row per paid image (backend, job, image, source door, cost, when): what the daily budgets
  and ``GET /api/v2/admin/costs`` sum. It outlives the jobs retention purges (``job_id`` is then NULL).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the backend and cost columns and the ledger."""
    for table in ("jobs", "images"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("backend", sa.String(length=32), nullable=True))
            batch.add_column(sa.Column("cost_usd", sa.Float(), nullable=True))
    op.create_table(
        "remote_calls",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("image_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_remote_calls_job_id_jobs"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_remote_calls_image_id_images"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_calls")),
    )
    op.create_index("ix_remote_calls_backend_created_at", "remote_calls", ["backend", "created_at"])
    op.create_index("ix_remote_calls_created_at", "remote_calls", ["created_at"])


def downgrade() -> None:
    """Back to local-only images."""
    op.drop_index("ix_remote_calls_created_at", table_name="remote_calls")
    op.drop_index("ix_remote_calls_backend_created_at", table_name="remote_calls")
    op.drop_table("remote_calls")
    for table in ("images", "jobs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("cost_usd")
            batch.drop_column("backend")
