"""Who the current request or job acts for: the :class:`Principal` of an authenticated key.

Standard library only, like :mod:`serve_app.auth.tenant`: the job service reads it to apply a tenant's quotas.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["CURRENT_PRINCIPAL", "Principal", "current_principal"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        key_id: The key's id.
        name: The key's name.
        tenant: Whose rows it sees.
        scopes: What it may do.
        limits: The key's overrides of ``auth.limits``.
    """

    key_id: uuid.UUID
    name: str
    tenant: str
    scopes: frozenset[str]
    limits: Mapping[str, int | None] = field(default_factory=dict)


CURRENT_PRINCIPAL: ContextVar[Principal | None] = ContextVar("limner_principal", default=None)


def current_principal() -> Principal | None:
    """The caller of this request, or None (auth off, the bridge, the service's own work)."""
    return CURRENT_PRINCIPAL.get()
