"""In-process single-flight: concurrent calls with the same key share one computation."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Flight(Generic[T]):
    """One running computation and how many callers still want its outcome."""

    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.waiters = 0


class SingleFlight(Generic[T]):
    """Run at most one computation per key at a time; callers that arrive meanwhile await its outcome.

    The computation runs in its own task and counts the callers waiting for it. A caller that gives up (is
    cancelled) does not cancel it while another caller still waits; when the last one gives up, the
    computation is cancelled too (nobody wants it: a cancelled job must not keep a generator busy), and that
    last caller's cancellation returns only once the computation has stopped, so whatever it held (a lock)
    is released by then. Its outcome, value or exception, goes to every caller that was waiting; nothing is
    kept afterwards, so the next call after a failure or a cancellation computes again.
    """

    def __init__(self) -> None:
        self._flights: dict[str, _Flight[T]] = {}

    def in_flight(self, key: str) -> bool:
        """Whether a computation for ``key`` is running."""
        return key in self._flights

    def waiters(self, key: str) -> int:
        """How many callers wait for the computation for ``key`` now (0 when none runs)."""
        flight = self._flights.get(key)
        return 0 if flight is None else flight.waiters

    async def run(self, key: str, compute: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Return ``compute()``'s value, sharing a running computation for ``key`` if there is one.

        Args:
            key: What identifies the computation.
            compute: Called only if no computation for ``key`` is running.

        Returns:
            The value, and whether it came from a computation another caller started.

        Raises:
            asyncio.CancelledError: This caller was cancelled (the computation is cancelled as well when no
                other caller waits for it).
        """
        flight = self._flights.get(key)
        shared = flight is not None
        if flight is None:

            async def _run() -> T:
                return await compute()

            flight = _Flight(asyncio.get_running_loop().create_task(_run()))
            self._flights[key] = flight
            flight.task.add_done_callback(functools.partial(self._finished, key, flight))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task), shared
        except asyncio.CancelledError:
            if flight.waiters == 1 and not flight.task.done():
                # The last caller gave up: nobody wants the outcome. Forget the flight at once, so a caller
                # arriving while it winds down starts afresh instead of joining a computation being cancelled.
                if self._flights.get(key) is flight:
                    del self._flights[key]
                flight.task.cancel()
                while not flight.task.done():
                    # A computation can swallow a cancellation: redis-py does when it lands inside a command
                    # (the lock's SET NX), and the computation would then run on, holding its lock. Ask again
                    # until it stops.
                    await asyncio.wait([flight.task], timeout=0.05)
                    if not flight.task.done():
                        flight.task.cancel()
            raise
        finally:
            flight.waiters -= 1

    def _finished(self, key: str, flight: _Flight[T], _task: asyncio.Task[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.task.cancelled():
            # Mark the exception retrieved: if every caller was cancelled, nobody else will look at it.
            flight.task.exception()
