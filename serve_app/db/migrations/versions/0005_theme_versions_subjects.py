"""Themes get immutable versions; recurring subjects; images record their theme version and subject.

- ``themes``: ``version`` (the current one), ``builtin`` and ``pack`` (themes shipped as data files),
  ``deleted_at`` (soft deletion). ``variations`` goes: a theme's variations are part of its versioned data.
- ``theme_versions``: one immutable row per version; ``(theme_id, version)`` is unique.
- ``subjects``: a subject key's seed base and appearance descriptors.
- ``images.theme_version`` and ``images.subject_key`` (indexed: a subject lists its images).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the version columns and tables."""
    with op.batch_alter_table("themes") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("builtin", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("pack", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("deleted_at", _TS, nullable=True))
        batch.drop_column("variations")
    with op.batch_alter_table("themes") as batch:  # the defaults only filled existing rows
        batch.alter_column("version", server_default=None, existing_type=sa.Integer())
        batch.alter_column("builtin", server_default=None, existing_type=sa.Boolean())
    op.create_table(
        "theme_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("theme_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["theme_id"], ["themes.id"], name=op.f("fk_theme_versions_theme_id_themes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_theme_versions")),
    )
    op.create_index("uq_theme_versions_theme_version", "theme_versions", ["theme_id", "version"], unique=True)
    op.create_table(
        "subjects",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("seed_base", sa.BigInteger(), nullable=False),
        sa.Column("descriptors", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_subjects")),
    )
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("theme_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("subject_key", sa.String(length=128), nullable=True))
        batch.create_index(batch.f("ix_images_subject_key"), ["subject_key"], unique=False)


def downgrade() -> None:
    """Back to unversioned themes."""
    with op.batch_alter_table("images") as batch:
        batch.drop_index(batch.f("ix_images_subject_key"))
        batch.drop_column("subject_key")
        batch.drop_column("theme_version")
    op.drop_table("subjects")
    op.drop_index("uq_theme_versions_theme_version", table_name="theme_versions")
    op.drop_table("theme_versions")
    with op.batch_alter_table("themes") as batch:
        batch.add_column(sa.Column("variations", sa.JSON(), nullable=False, server_default="{}"))
        batch.drop_column("deleted_at")
        batch.drop_column("pack")
        batch.drop_column("builtin")
        batch.drop_column("version")
    with op.batch_alter_table("themes") as batch:
        batch.alter_column("variations", server_default=None, existing_type=sa.JSON())
