"""Single-flight stops a computation nobody waits for, even one that swallows a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.cache.singleflight import SingleFlight


async def test_a_computation_that_swallows_one_cancellation_is_still_stopped() -> None:
    # redis-py swallows a cancellation that lands inside a command; the computation then runs on.
    release = asyncio.Event()
    stopped: list[str] = []

    async def stubborn() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # swallowed, like a client library cleaning up mid-command
        try:
            await release.wait()
        except asyncio.CancelledError:
            stopped.append("second cancel")
            raise
        return "ran on"

    flight: SingleFlight[str] = SingleFlight()
    caller = asyncio.ensure_future(flight.run("k", stubborn))
    for _ in range(100):
        if flight.waiters("k") == 1:
            break
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)  # let the computation reach its first await
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert stopped == ["second cancel"] and not flight.in_flight("k")
