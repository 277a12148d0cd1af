"""In-process single-flight: concurrent calls with the same key share one computation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Run at most one computation per key at a time; callers that arrive meanwhile await its outcome.

    The computation runs in its own task, so a caller that gives up (is cancelled) does not cancel it for
    the others. Its outcome, value or exception, goes to every caller that was waiting; nothing is kept
    afterwards, so the next call after a failure computes again.
    """

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Task[T]] = {}

    def in_flight(self, key: str) -> bool:
        """Whether a computation for ``key`` is running."""
        return key in self._flights

    async def run(self, key: str, compute: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Return ``compute()``'s value, sharing a running computation for ``key`` if there is one.

        Args:
            key: What identifies the computation.
            compute: Called only if no computation for ``key`` is running.

        Returns:
            The value, and whether it came from a computation another caller started.
        """
        task = self._flights.get(key)
        shared = task is not None
        if task is None:

            async def _run() -> T:
                return await compute()

            task = asyncio.get_running_loop().create_task(_run())
            self._flights[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task), shared

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            # Mark the exception retrieved: if every caller was cancelled, nobody else will look at it.
            task.exception()
