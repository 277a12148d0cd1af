"""Overlays get versions: editing an overlay (move a token, add a fireball) writes a new version re-rendered on the
same background; tactical maps are overlays of kind ``tactical_map``.

- ``overlays``: ``version`` (the current one), ``geometry`` (the current version's computed cells and costs),
  ``job_id`` (the job that made a map, if one did), ``deleted_at`` (soft deletion).
- ``overlay_versions``: one immutable row per version (its spec, render and geometry); ``(overlay_id, version)``
  is unique.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the version columns and table."""
    with op.batch_alter_table("overlays") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("geometry", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("job_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("deleted_at", _TS, nullable=True))
    with op.batch_alter_table("overlays") as batch:  # the defaults only filled existing rows
        batch.alter_column("version", server_default=None, existing_type=sa.Integer())
        batch.alter_column("geometry", server_default=None, existing_type=sa.JSON())
    op.create_table(
        "overlay_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("overlay_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.Column("result_image_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["overlay_id"], ["overlays.id"], name=op.f("fk_overlay_versions_overlay_id_overlays"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["result_image_id"],
            ["images.id"],
            name=op.f("fk_overlay_versions_result_image_id_images"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overlay_versions")),
    )
    op.create_index("uq_overlay_versions_overlay_version", "overlay_versions", ["overlay_id", "version"], unique=True)


def downgrade() -> None:
    """Back to unversioned overlays."""
    op.drop_index("uq_overlay_versions_overlay_version", table_name="overlay_versions")
    op.drop_table("overlay_versions")
    with op.batch_alter_table("overlays") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("job_id")
        batch.drop_column("geometry")
        batch.drop_column("version")
