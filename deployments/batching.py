"""Batching by key: concurrent requests that can share one model call are run together.

Ray's ``@serve.batch`` batches whatever arrives, but SDXL can only batch requests that share a size, step
count, scheduler, guidance and mode. :class:`KeyedBatcher` keeps one queue and forms each batch from the
oldest waiting request plus the others with the same key, up to ``max_batch_size``.

A request that reaches an idle batcher starts at once (unless ``batch_wait_s`` asks it to wait for
company); requests that arrive while a batch runs wait and form the next batch. Batches run one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["KeyedBatcher", "Pending"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class Pending(Generic[T, R]):
    """A request waiting in the batcher.

    Attributes:
        item: The request.
        future: Resolved with its result; cancelled when its caller goes away.
        enqueued: ``time.perf_counter()`` when it arrived.
    """

    item: T
    future: asyncio.Future[R]
    enqueued: float = field(default_factory=time.perf_counter)

    def abandoned(self) -> bool:
        """True when nobody waits for the result any more (the caller was cancelled)."""
        return self.future.done()


class KeyedBatcher(Generic[T, R]):
    """Groups concurrent requests by key and runs each group through ``handler`` as one batch.

    Args:
        handler: Runs one batch; returns one result (or exception instance) per pending request, in order.
        key: The batch key of a request.
        max_batch_size: Most requests in one batch.
        batch_wait_s: How long an idle batcher waits for more requests before starting a lone one.
    """

    def __init__(
        self,
        handler: Callable[[Sequence[Pending[T, R]]], Awaitable[Sequence[R | BaseException]]],
        key: Callable[[T], Hashable],
        max_batch_size: int = 4,
        batch_wait_s: float = 0.0,
    ) -> None:
        self._handler = handler
        self._key = key
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self._queue: list[Pending[T, R]] = []
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def configure(self, max_batch_size: int, batch_wait_s: float) -> None:
        """Changes batch size and wait; the next batch uses them."""
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size} is not allowed: at least 1")
        if batch_wait_s < 0:
            raise ValueError(f"batch_wait_s={batch_wait_s} is not allowed: at least 0")
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s

    @property
    def queued(self) -> int:
        """Requests waiting for a batch."""
        return sum(1 for p in self._queue if not p.abandoned())

    async def submit(self, item: T) -> R:
        """Queues ``item`` and returns its result once its batch ran.

        Raises:
            BaseException: Whatever the handler returned or raised for this item.
        """
        (pending,) = self._enqueue([item])
        return await pending.future

    async def submit_all(self, items: Sequence[T]) -> list[R | BaseException]:
        """Queues every item of ``items`` at once, so a free batch takes them together, and returns their
        results (or exceptions) in order.

        One call is how a family of requests (a ``variations: 4`` job) is known to share a batch: they share
        a key, and nothing can arrive between them. Items beyond ``max_batch_size`` form the next batch.
        """
        waiting = self._enqueue(items)
        try:
            return list(await asyncio.gather(*(p.future for p in waiting), return_exceptions=True))
        finally:
            for pending in waiting:
                if not pending.future.done():
                    pending.future.cancel()

    def _enqueue(self, items: Sequence[T]) -> list[Pending[T, R]]:
        """Appends ``items`` to the queue in one go (no await in between) and wakes the worker."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # First use, or a new event loop (tests): asyncio primitives belong to the loop they were made on.
            self._loop, self._arrived, self._worker = loop, asyncio.Event(), None
            self._queue = [p for p in self._queue if not p.abandoned()]
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run(), name="keyed-batcher")
        waiting: list[Pending[T, R]] = [Pending(item, loop.create_future()) for item in items]
        self._queue.extend(waiting)
        assert self._arrived is not None
        self._arrived.set()
        return waiting

    def _take_batch(self) -> list[Pending[T, R]]:
        """Removes and returns the oldest live request and up to ``max_batch_size - 1`` of its kind."""
        self._queue = [p for p in self._queue if not p.abandoned()]
        if not self._queue:
            return []
        key = self._key(self._queue[0].item)
        batch: list[Pending[T, R]] = []
        rest: list[Pending[T, R]] = []
        for pending in self._queue:
            if len(batch) < self.max_batch_size and self._key(pending.item) == key:
                batch.append(pending)
            else:
                rest.append(pending)
        self._queue = rest
        return batch

    async def _wait_for_company(self) -> None:
        """While idle, waits up to ``batch_wait_s`` for the oldest request's batch to fill."""
        assert self._arrived is not None  # set in submit() before the worker starts
        deadline = time.perf_counter() + self.batch_wait_s
        while True:
            live = [p for p in self._queue if not p.abandoned()]
            if not live:
                return
            key = self._key(live[0].item)
            if sum(1 for p in live if self._key(p.item) == key) >= self.max_batch_size:
                return
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    async def _run(self) -> None:
        assert self._arrived is not None
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                # Idle → busy: only now is waiting for company worth anything.
                if self.batch_wait_s > 0:
                    await self._wait_for_company()
            batch = self._take_batch()
            if not batch:
                continue
            try:
                results = await self._handler(batch)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.cancel()
                    raise
                results = [exc] * len(batch)
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
