"""Whose rows a piece of work may see: the tenant scope every store filters on.

One ContextVar, :data:`CURRENT_TENANT`, set by the HTTP auth dependency for each authenticated request (from the
key's tenant), by the dispatcher around each job attempt (from the job's tenant), and by the Experimance bridge
for its own jobs. Stores read it with :func:`current_tenant`:

- ``None``: unscoped. Auth is off, or the code is the service's own (the janitor, the deliverer, a migration, a
  test): every row is visible, and rows it creates belong to :data:`OPEN_TENANT`.
- a string: scoped to that tenant. Only that tenant's rows are visible (another tenant's id is "not found", so ids
  do not leak); rows it creates belong to it. Shared rows (:data:`OPEN_TENANT`) are visible read-only where a
  store says so (themes), never for jobs and images.

Kept free of any import beyond the standard library: every layer may read it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["CURRENT_TENANT", "OPEN_TENANT", "current_tenant", "owner_tenant", "tenant_scope"]

OPEN_TENANT = ""
"""The tenant of rows made while unscoped (auth off, the service's own work), and of every row made before
tenants existed."""

CURRENT_TENANT: ContextVar[str | None] = ContextVar("limner_tenant", default=None)


def current_tenant() -> str | None:
    """The tenant this task is scoped to, or None when unscoped (see the module docstring)."""
    return CURRENT_TENANT.get()


def owner_tenant() -> str:
    """The tenant a row made now belongs to: the current one, or :data:`OPEN_TENANT` when unscoped."""
    tenant = CURRENT_TENANT.get()
    return OPEN_TENANT if tenant is None else tenant


@contextlib.contextmanager
def tenant_scope(tenant: str | None) -> Iterator[None]:
    """Runs the block scoped to ``tenant`` (None: unscoped), then restores the previous scope."""
    token = CURRENT_TENANT.set(tenant)
    try:
        yield
    finally:
        CURRENT_TENANT.reset(token)
