from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from deployments.batching import KeyedBatcher, Pending


class Recorder:
    """A batch handler that records each batch and holds it until released."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, batch: Sequence[Pending[tuple[str, int], str]]) -> list[str | BaseException]:
        self.batches.append([p.item for p in batch])
        await self.release.wait()
        return [f"{k}{v}" if v >= 0 else ValueError(v) for k, v in (p.item for p in batch)]


def _batcher(rec: Recorder, size: int = 4, wait: float = 0.0) -> KeyedBatcher[tuple[str, int], str]:
    return KeyedBatcher(rec, key=lambda item: item[0], max_batch_size=size, batch_wait_s=wait)


async def test_lone_request_starts_at_once_and_others_gather_behind_it() -> None:
    rec = Recorder(hold=True)
    b = _batcher(rec)
    first = asyncio.create_task(b.submit(("a", 0)))
    await asyncio.sleep(0.01)
    assert rec.batches == [[("a", 0)]]  # did not wait for company
    rest = [asyncio.create_task(b.submit(("a", i))) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    rec.release.set()
    assert await first == "a0"
    assert await asyncio.gather(*rest) == [f"a{i}" for i in range(1, 6)]
    assert [len(x) for x in rec.batches] == [1, 4, 1]  # the busy period formed a full batch


async def test_keys_never_share_a_batch_and_oldest_goes_first() -> None:
    rec = Recorder(hold=True)
    b = _batcher(rec, size=8)
    blocker = asyncio.create_task(b.submit(("z", 0)))
    await asyncio.sleep(0.01)
    items = [("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5)]
    tasks = [asyncio.create_task(b.submit(item)) for item in items]
    await asyncio.sleep(0.01)
    rec.release.set()
    await asyncio.gather(blocker, *tasks)
    assert rec.batches[1:] == [[("a", 1), ("a", 3), ("a", 5)], [("b", 2), ("b", 4)]]


async def test_wait_for_company_when_configured() -> None:
    rec = Recorder()
    b = _batcher(rec, size=3, wait=0.2)
    tasks = [asyncio.create_task(b.submit(("a", i))) for i in range(3)]
    await asyncio.gather(*tasks)
    assert rec.batches == [[("a", 0), ("a", 1), ("a", 2)]]


async def test_errors_reach_their_own_caller_only() -> None:
    rec = Recorder(hold=True)
    b = _batcher(rec)
    blocker = asyncio.create_task(b.submit(("a", 0)))
    await asyncio.sleep(0.01)
    good = asyncio.create_task(b.submit(("a", 1)))
    bad = asyncio.create_task(b.submit(("a", -1)))
    await asyncio.sleep(0.01)
    rec.release.set()
    assert await blocker == "a0" and await good == "a1"
    with pytest.raises(ValueError):
        await bad


async def test_handler_crash_fails_the_batch_and_the_batcher_survives() -> None:
    calls = 0

    async def flaky(batch: Sequence[Pending[tuple[str, int], str]]) -> list[str | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("replica hiccup")
        return ["ok" for _ in batch]

    b: KeyedBatcher[tuple[str, int], str] = KeyedBatcher(flaky, key=lambda i: i[0])
    with pytest.raises(RuntimeError):
        await b.submit(("a", 1))
    assert await b.submit(("a", 2)) == "ok"


async def test_abandoned_requests_are_not_run() -> None:
    rec = Recorder(hold=True)
    b = _batcher(rec)
    blocker = asyncio.create_task(b.submit(("a", 0)))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(b.submit(("a", 1)))
    kept = asyncio.create_task(b.submit(("a", 2)))
    await asyncio.sleep(0.01)
    assert b.queued == 2
    gone.cancel()
    await asyncio.sleep(0)
    assert b.queued == 1
    rec.release.set()
    assert await kept == "a2"
    await blocker
    assert rec.batches[1] == [("a", 2)]


async def test_configure_applies_to_the_next_batch() -> None:
    rec = Recorder(hold=True)
    b = _batcher(rec, size=4)
    blocker = asyncio.create_task(b.submit(("a", 0)))
    await asyncio.sleep(0.01)
    b.configure(max_batch_size=2, batch_wait_s=0.0)
    tasks = [asyncio.create_task(b.submit(("a", i))) for i in range(1, 5)]
    await asyncio.sleep(0.01)
    rec.release.set()
    await asyncio.gather(blocker, *tasks)
    assert [len(x) for x in rec.batches] == [1, 2, 2]
    with pytest.raises(ValueError, match="max_batch_size"):
        b.configure(max_batch_size=0, batch_wait_s=0.0)


async def test_submit_all_queues_a_family_as_one_batch_even_on_an_idle_batcher() -> None:
    rec = Recorder()
    b = _batcher(rec)
    # With submit() one by one, the first would start alone on an idle batcher; submit_all queues them together.
    assert await b.submit_all([("a", i) for i in range(4)]) == [f"a{i}" for i in range(4)]
    assert [len(x) for x in rec.batches] == [4]


async def test_submit_all_beyond_the_batch_size_splits_in_order_and_returns_errors_in_place() -> None:
    rec = Recorder()
    b = _batcher(rec, size=4)
    results = await b.submit_all([("a", 0), ("a", -1), ("a", 2), ("a", 3), ("a", 4), ("a", 5)])
    assert [len(x) for x in rec.batches] == [4, 2]
    assert results[0] == "a0" and isinstance(results[1], ValueError) and results[2:] == ["a2", "a3", "a4", "a5"]


async def test_cancelling_submit_all_abandons_every_member() -> None:
    rec = Recorder(hold=True)
    b = _batcher(rec)
    blocker = asyncio.create_task(b.submit(("z", 0)))
    await asyncio.sleep(0.01)
    family = asyncio.create_task(b.submit_all([("a", 1), ("a", 2)]))
    await asyncio.sleep(0.01)
    family.cancel()
    with pytest.raises(asyncio.CancelledError):
        await family
    assert b.queued == 0  # nobody waits for them: the next batch will not run them
    rec.release.set()
    assert await blocker == "z0"
