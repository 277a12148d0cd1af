"""Fixtures: a bound stand-in core, a bridge factory wired to it, and a scriptable render."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio
from PIL import Image

from serve_app.experimance.bridge import BridgeJob, CancelFn, RenderFn, ZmqBridge
from serve_app.experimance.config import BridgeConfig
from tests.experimance._core import BIOMES, ERAS, FakeCore

StartBridge = Callable[..., Awaitable[ZmqBridge]]


def colour_for(era: str | None, biome: str | None) -> tuple[int, int, int]:
    """A distinct colour per era/biome, so a file can be traced back to the request that made it."""
    e = ERAS.index(era) if era else 0
    b = BIOMES.index(biome) if biome else 0
    return (30 + 25 * e, 20 + 15 * b, 230 - 20 * e)


class Painter:
    """A deterministic render: a flat colour per era/biome, with the init image pasted in the middle.

    Per request id it can wait on a gate, sleep, fail or hang; it records the jobs it saw and the order it
    finished them in.

    Args:
        size: Size of the image it returns (the bridge scales it to the requested size).
        as_bytes: Return PNG bytes instead of a PIL image.
    """

    def __init__(self, size: tuple[int, int] = (64, 48), as_bytes: bool = False) -> None:
        self.size = size
        self.as_bytes = as_bytes
        self.jobs: list[BridgeJob] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.delays: dict[str, float] = {}
        self.fail: set[str] = set()
        self.hang: set[str] = set()
        self.colours: dict[str, tuple[int, int, int]] = {}

    async def __call__(self, job: BridgeJob) -> bytes | Image.Image:
        self.jobs.append(job)
        try:
            if job.request_id in self.gates:
                await self.gates[job.request_id].wait()
            if job.request_id in self.hang:
                await asyncio.Event().wait()
            await asyncio.sleep(self.delays.get(job.request_id, 0.0))
        except asyncio.CancelledError:
            self.cancelled.append(job.request_id)
            raise
        if job.request_id in self.fail:
            raise RuntimeError("the generator broke")
        colour = self.colours.get(job.request_id, colour_for(job.era, job.biome))
        image = Image.new("RGB", self.size, colour)
        if job.init_image is not None:
            patch = job.init_image.convert("RGB").resize((self.size[0] // 2, self.size[1] // 2))
            image.paste(patch, (self.size[0] // 4, self.size[1] // 4))
        self.finished.append(job.request_id)
        if self.as_bytes:
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            return buffer.getvalue()
        return image

    def job(self, request_id: str) -> BridgeJob:
        """The job the render saw for ``request_id``."""
        return next(job for job in self.jobs if job.request_id == request_id)


class CancelRecorder:
    """A ``cancel`` coroutine that records the ids it was told."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def __call__(self, request_ids: list[str]) -> None:
        self.calls.append(list(request_ids))

    @property
    def ids(self) -> list[str]:
        """Every id told, in order."""
        return [request_id for call in self.calls for request_id in call]


@pytest.fixture
async def zmq_context() -> AsyncIterator[zmq.asyncio.Context]:
    context = zmq.asyncio.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
async def core(zmq_context: zmq.asyncio.Context) -> AsyncIterator[FakeCore]:
    fake = FakeCore(zmq_context)
    await fake.bind()
    yield fake
    fake.close()


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "media" / "images" / "generated"


@pytest.fixture
async def start_bridge(core: FakeCore, output_dir: Path) -> AsyncIterator[StartBridge]:
    """Starts a bridge connected to ``core``; keyword arguments override :class:`BridgeConfig` fields."""
    bridges: list[ZmqBridge] = []

    async def _start(render: RenderFn, *, cancel: CancelFn | None = None, **overrides: Any) -> ZmqBridge:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "request_port": core.request_port,
            "result_port": core.result_port,
            "output_dir": output_dir,
            "timeout_s": 10.0,
            "linger_ms": 0,
        }
        values.update(overrides)
        bridge = ZmqBridge(BridgeConfig(**values), render, cancel=cancel)
        await bridge.start()
        bridges.append(bridge)
        return bridge

    yield _start
    for bridge in bridges:
        await bridge.stop()


@pytest.fixture
def experimance_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog``, fed by the experimance logger directly: once ``ray`` is imported, its logger does not
    propagate to the root logger, where ``caplog`` listens."""
    logger = logging.getLogger("ray.serve.limner.experimance")
    monkeypatch.setattr(logger, "propagate", False)  # one copy of each record, whether ray is imported or not
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger=logger.name)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
