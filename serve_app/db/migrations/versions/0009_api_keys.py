"""API keys: who may call the HTTP API, with which scopes, as which tenant.

- ``api_keys``: one row per key. Only the key's SHA-256 is stored (``key_hash``, unique): a key is 256 random bits,
  so a fast hash is as good as a slow one and lets a request be checked with one indexed lookup; the key itself is
  shown once, at creation. ``prefix`` (the first characters of the key) is what ``keys list`` shows to tell keys
  apart. ``scopes`` is a JSON list; ``limits`` a JSON object of per-key overrides of ``auth.limits``.
  ``revoked_at`` and ``expires_at`` end a key; ``last_used_at`` is refreshed at most once a minute.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the key table."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("last_used_at", _TS, nullable=True),
    )
    op.create_index("uq_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])


def downgrade() -> None:
    """Drop the key table."""
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_index("uq_api_keys_key_hash", table_name="api_keys")
    op.drop_table("api_keys")
