"""Indexes that keep retention and image purges cheap on a large ``jobs`` table.

- ``jobs.finished_at``: the retention janitor deletes finished jobs older than N days in batches.
- ``jobs.result_image_id`` and ``overlays.result_image_id``: purging an image sets these to NULL (their
  foreign keys are ``ON DELETE SET NULL``); without an index every purged image scans the whole table.
- ``images.deleted_at``: the janitor purges soft-deleted images after their grace period.

The dispatcher's own queries (count of queued jobs, expired deadlines, claim) are ranges on the existing
``ix_jobs_claim`` (status first); see load_tests/bench_jobs.py ``--retention`` for their plans and timings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the four indexes."""
    op.create_index("ix_jobs_finished", "jobs", ["finished_at"], unique=False)
    op.create_index(op.f("ix_jobs_result_image_id"), "jobs", ["result_image_id"], unique=False)
    op.create_index(op.f("ix_overlays_result_image_id"), "overlays", ["result_image_id"], unique=False)
    op.create_index(op.f("ix_images_deleted_at"), "images", ["deleted_at"], unique=False)


def downgrade() -> None:
    """Drop them."""
    op.drop_index(op.f("ix_images_deleted_at"), table_name="images")
    op.drop_index(op.f("ix_overlays_result_image_id"), table_name="overlays")
    op.drop_index(op.f("ix_jobs_result_image_id"), table_name="jobs")
    op.drop_index("ix_jobs_finished", table_name="jobs")
