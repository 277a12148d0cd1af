"""Tenants: every tenant-owned root row records whose it is (serve_app/auth/tenant.py).

- ``tenant`` (``String(64)``, not null, default ``''``: the open tenant, which every row made before tenants
  existed belongs to) on ``jobs``, ``images``, ``themes``, ``subjects`` and ``overlays``. Their children
  (``job_events``, ``webhook_deliveries``, ``theme_versions``, ``overlay_versions``) follow their parent.
- ``jobs.idempotency_key`` is unique per tenant (``uq_jobs_tenant_idempotency_key`` replaces
  ``uq_jobs_idempotency_key``): one tenant's key never answers with another tenant's job.
- ``themes.name`` is unique per tenant (``uq_themes_tenant_name`` replaces ``uq_themes_name``): a tenant's theme
  may share the name of a shared one, which it then shadows.
- ``subjects`` is keyed by ``(tenant, key)``: a subject key names a different subject in each tenant.
- ``ix_jobs_tenant_created`` (a tenant's job list, newest first) and ``ix_jobs_tenant_started`` (when the claim
  last started a job of a tenant: the fairness tie-break, one index probe per tenant).

Downgrading folds the tenants back into one namespace: it fails where two tenants used the same theme name,
subject key or idempotency key.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant", sa.String(length=64), nullable=False, server_default="")


def upgrade() -> None:
    """Add the tenant columns and make the per-tenant keys."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(_tenant())
        batch.drop_constraint("uq_jobs_idempotency_key", type_="unique")
        batch.create_index("uq_jobs_tenant_idempotency_key", ["tenant", "idempotency_key"], unique=True)
        batch.create_index("ix_jobs_tenant_created", ["tenant", "created_at", "id"], unique=False)
        batch.create_index("ix_jobs_tenant_started", ["tenant", "started_at"], unique=False)
    with op.batch_alter_table("images") as batch:
        batch.add_column(_tenant())
    with op.batch_alter_table("themes") as batch:
        batch.add_column(_tenant())
        batch.drop_constraint("uq_themes_name", type_="unique")
        batch.create_index("uq_themes_tenant_name", ["tenant", "name"], unique=True)
    with op.batch_alter_table("subjects") as batch:
        batch.add_column(_tenant())
        batch.drop_constraint("pk_subjects", type_="primary")
        batch.create_primary_key("pk_subjects", ["tenant", "key"])
    with op.batch_alter_table("overlays") as batch:
        batch.add_column(_tenant())


def downgrade() -> None:
    """Back to one namespace."""
    with op.batch_alter_table("overlays") as batch:
        batch.drop_column("tenant")
    with op.batch_alter_table("subjects") as batch:
        batch.drop_constraint("pk_subjects", type_="primary")
        batch.create_primary_key("pk_subjects", ["key"])
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("tenant")
    with op.batch_alter_table("themes") as batch:
        batch.drop_index("uq_themes_tenant_name")
        batch.create_unique_constraint("uq_themes_name", ["name"])
    with op.batch_alter_table("themes") as batch:
        batch.drop_column("tenant")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("tenant")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_tenant_started")
        batch.drop_index("ix_jobs_tenant_created")
        batch.drop_index("uq_jobs_tenant_idempotency_key")
        batch.create_unique_constraint("uq_jobs_idempotency_key", ["idempotency_key"])
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("tenant")
