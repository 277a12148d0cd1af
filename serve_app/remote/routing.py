"""Which backend draws a request: ``local`` (the generator), a named paid API, or ``auto`` (``remote.routing``).

Acceptance (:meth:`Router.accept`) validates the name and, for a named paid API, checks the request against what
that API can honour (sizes, steps, schedulers: an ``InputError`` naming the field and the backend) and its daily
budget (402 once spent), before any call. At run time (:meth:`Router.candidates`) ``auto`` walks
``routing.order``: the local generator while it is ready and its queue is short (an estimate of the wait under
``routing.max_local_wait_s``), else each configured API that can honour the request, has budget left and whose
circuit is not open. The stages try them in that order and fall through on a backend's failure.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.canonical import canonical_hash
from pipelines.errors import InputError

if TYPE_CHECKING:
    from pipelines.remote.base import RemoteBackend
    from pipelines.request import GenerationRequest
    from serve_app.config import RemoteConfig
    from serve_app.remote.ledger import CostLedger

__all__ = ["Candidate", "Router", "backend_hash"]

LOCAL = "local"
AUTO = "auto"


def backend_hash(digest: str, backend: str) -> str:
    """The cache key of a request on ``backend``: the request's own hash locally, else one that also names the
    backend (an image from a paid API is not the local generator's image of the same request)."""
    return digest if backend == LOCAL else canonical_hash({"request": digest, "backend": backend})


@dataclass(frozen=True)
class Candidate:
    """A backend to try, and why it was chosen (recorded in the job's ``backend`` event under ``auto``)."""

    name: str
    reason: str


class Router:
    """Routing over the configured backends.

    Args:
        config: The ``remote`` section.
        ledger: The cost ledger (daily budgets); None: budgets are not enforced.
        local_stats: The generator's statistics (its queue and recent call times), for ``auto``'s wait estimate.
        local_ready: Whether the generator can serve (its readiness, None while loading).
        remote_ready: The remote stage's circuit states (``{name: {"breaker": state}}``); None: not deployed.
    """

    def __init__(
        self,
        config: RemoteConfig,
        ledger: CostLedger | None,
        *,
        local_stats: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        local_ready: Callable[[], Awaitable[dict[str, Any] | None]] | None = None,
        remote_ready: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        from serve_app.remote.stage import build_backend

        self._config = config
        self._ledger = ledger
        self._local_stats = local_stats
        self._local_ready = local_ready
        self._remote_ready = remote_ready
        # Check-only instances (no key: nothing is ever sent through them): the limits each API declares.
        self._checkers: dict[str, RemoteBackend] = {
            name: build_backend(name, entry, "") for name, entry in config.configured.items()
        }

    @property
    def default(self) -> str:
        return self._config.routing.default

    def resolve(self, requested: str | None) -> str:
        """The backend a request runs on (``routing.default`` when it names none).

        Raises:
            InputError: ``backend`` names nothing configured here.
        """
        name = self.default if requested is None else requested
        allowed = (LOCAL, AUTO, *self._checkers)
        if name not in allowed:
            raise InputError("backend", requested, f"one of {', '.join(allowed)} (the configured backends)")
        return name

    async def accept(self, requested: str | None, request: GenerationRequest) -> str:
        """Resolves and checks ``requested`` for ``request`` at acceptance; returns the backend name.

        Raises:
            InputError: An unknown backend, or a request the named API cannot honour (the field named).
            BackendBudgetError: The named API has spent its daily budget.
        """
        name = self.resolve(requested)
        if name in self._checkers:
            self._checkers[name].check(request)
            await self.require_budget(name)
        elif name == AUTO and not await self.candidates(name, request):
            raise InputError("backend", AUTO, "a backend that can honour this request (none can now)")
        return name

    async def budget_left(self, name: str) -> float | None:
        """What ``name`` may still spend today (UTC); None: no budget configured."""
        from serve_app.remote.ledger import start_of_day

        entry = self._config.configured.get(name)
        if entry is None or entry.daily_budget_usd is None or self._ledger is None:
            return None
        return entry.daily_budget_usd - await self._ledger.spent(name, start_of_day())

    async def require_budget(self, name: str) -> None:
        """Raises :class:`~pipelines.remote.errors.BackendBudgetError` when ``name``'s daily budget is spent."""
        from pipelines.remote.errors import BackendBudgetError

        left = await self.budget_left(name)
        if left is not None and left <= 0:
            budget = self._config.configured[name].daily_budget_usd
            raise BackendBudgetError(name, f"the daily budget of ${budget:.2f} is spent; it resets at 00:00 UTC")

    async def local_wait_s(self) -> float | None:
        """An estimate of the wait in the local generator's queue; None when it is not ready."""
        if self._local_ready is not None and await self._local_ready() is None:
            return None
        if self._local_stats is None:
            return 0.0
        stats = await self._local_stats()
        calls = [c["seconds"] for c in stats.get("recent_calls", []) if "seconds" in c]
        if not calls:
            return 0.0
        per_call = sum(calls) / len(calls)
        batches = math.ceil((int(stats.get("queued", 0)) + 1) / max(1, int(stats.get("max_batch_size", 1))))
        return batches * per_call

    async def candidates(self, requested: str, request: GenerationRequest) -> list[Candidate]:
        """What to try, in order: the one named, or ``auto``'s choices (possibly none)."""
        if requested != AUTO:
            return [Candidate(requested, "requested")]
        routing = self._config.routing
        circuits = await self._remote_ready() if self._remote_ready is not None else {}
        out: list[Candidate] = []
        for name in routing.order:
            if name == LOCAL:
                wait = await self.local_wait_s()
                if wait is not None and wait <= routing.max_local_wait_s:
                    out.append(Candidate(LOCAL, f"local queue wait about {wait:.1f} s"))
                continue
            checker = self._checkers.get(name)
            if checker is None:
                continue
            try:
                checker.check(request)
            except InputError:
                continue
            left = await self.budget_left(name)
            if left is not None and left <= 0:
                continue
            if circuits.get(name, {}).get("breaker") == "open":
                continue
            out.append(Candidate(name, "next in routing.order"))
        return out
