"""A stand-in for the installation's core, written from docs/EXPERIMANCE_PROTOCOL.md alone.

It binds a PUSH (requests) and a PULL (results) on free ports, as ``experimance_core`` does, and speaks
through its own pydantic models of the installation's schemas (deliberately not the ones under test), so a
reply that the real core would reject fails here too.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import zmq
import zmq.asyncio
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

EraName = Literal[
    "wilderness",
    "pre_industrial",
    "early_industrial",
    "late_industrial",
    "modern",
    "current",
    "future",
    "dystopia",
    "ruins",
]
BiomeName = Literal[
    "rainforest",
    "temperate_forest",
    "boreal_forest",
    "deciduous_forest",
    "desert",
    "mountain",
    "tropical_island",
    "river",
    "tundra",
    "steppe",
    "coastal",
    "swamp",
    "plains",
    "arctic",
    "jungle",
]
ERAS: tuple[str, ...] = get_args(EraName)
BIOMES: tuple[str, ...] = get_args(BiomeName)


class CoreImageSource(BaseModel):
    """``ImageSource`` as the installation defines it."""

    model_config = ConfigDict(extra="ignore")
    image_data: str | None = None
    uri: str | None = None


class CoreRenderRequest(BaseModel):
    """The experimance project's ``RenderRequest``, as the core serialises it (every field, nulls included)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["RenderRequest"] = "RenderRequest"
    request_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    generator: str | None = None
    prompt: str = "a landscape"
    negative_prompt: str | None = None
    width: int | None = 1024
    height: int | None = 1024
    style: str | None = None
    seed: int | None = None
    reference_image: CoreImageSource | None = None
    depth_map: CoreImageSource | None = None
    clear_queue: bool = False
    era: EraName = "modern"
    biome: BiomeName = "desert"

    def frame(self) -> bytes:
        """One frame: the JSON text, UTF-8, like ``PushComponent.push``."""
        return self.model_dump_json().encode("utf-8")


class CoreImageReady(BaseModel):
    """The experimance project's ``ImageReady`` as the core validates it (era/biome required)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["ImageReady"]
    request_id: str
    uri: str
    prompt: str | None = None
    era: EraName
    biome: BiomeName

    @property
    def path(self) -> Path:
        """The file, with ``file://`` stripped literally (``uri_to_file_path``)."""
        assert self.uri.startswith("file://"), self.uri
        return Path(self.uri.removeprefix("file://"))


class FakeCore:
    """Binds PUSH (requests) and PULL (results) on free 127.0.0.1 ports, like the installation's core.

    Args:
        context: The asyncio ZMQ context the sockets are made in.
    """

    def __init__(self, context: zmq.asyncio.Context) -> None:
        self._context = context
        self.push: zmq.asyncio.Socket | None = None
        self.pull: zmq.asyncio.Socket | None = None
        self.request_port = 0
        self.result_port = 0
        self.raw_replies: list[bytes] = []

    async def bind(self, request_port: int = 0, result_port: int = 0) -> None:
        """Binds both sockets, on the given ports or on free ones; retries while a closed port is released."""
        self.push = self._context.socket(zmq.PUSH)
        self.pull = self._context.socket(zmq.PULL)
        for sock in (self.push, self.pull):
            sock.setsockopt(zmq.LINGER, 0)
        self.request_port = await _bind(self.push, request_port)
        self.result_port = await _bind(self.pull, result_port)

    def close(self) -> None:
        """Closes both sockets at once, dropping anything unsent (a core that dies)."""
        for sock in (self.push, self.pull):
            if sock is not None and not sock.closed:
                sock.close(linger=0)

    async def restart(self) -> None:
        """Closes both sockets and binds new ones on the same ports, like a restarted core."""
        self.close()
        await self.bind(self.request_port, self.result_port)

    async def send(self, message: CoreRenderRequest | bytes, timeout: float = 10.0) -> str | None:
        """Pushes one frame; like the core, gives up after ``timeout`` when no worker is connected.

        Returns:
            The request id when a request model was sent.
        """
        assert self.push is not None
        frame = message.frame() if isinstance(message, CoreRenderRequest) else message
        await asyncio.wait_for(self.push.send(frame), timeout)
        return message.request_id if isinstance(message, CoreRenderRequest) else None

    async def receive(self, timeout: float = 15.0) -> CoreImageReady:
        """The next reply, validated the way the core validates it."""
        assert self.pull is not None
        frames = await asyncio.wait_for(self.pull.recv_multipart(), timeout)
        assert len(frames) == 1, f"a reply must be one frame, got {len(frames)}"
        self.raw_replies.append(frames[0])
        return CoreImageReady.model_validate(json.loads(frames[0].decode("utf-8")))

    async def receive_many(self, count: int, timeout: float = 30.0) -> list[CoreImageReady]:
        """The next ``count`` replies, within ``timeout`` seconds overall."""
        async with asyncio.timeout(timeout):
            return [await self.receive(timeout) for _ in range(count)]

    async def assert_silent(self, seconds: float = 0.3) -> None:
        """Fails if any reply arrives within ``seconds``."""
        assert self.pull is not None
        events = await self.pull.poll(timeout=int(seconds * 1000))
        if events:
            extra = await self.pull.recv()
            raise AssertionError(f"unexpected reply: {extra[:300]!r}")


async def _bind(sock: zmq.asyncio.Socket, port: int) -> int:
    if not port:
        return sock.bind_to_random_port("tcp://127.0.0.1")
    for _ in range(100):
        try:
            sock.bind(f"tcp://127.0.0.1:{port}")
            return port
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE:
                raise
            await asyncio.sleep(0.05)  # the old listener is released by ZMQ's I/O thread
    raise AssertionError(f"port {port} was not released")


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Polls ``predicate`` until it holds; fails after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def data_url(image: Image.Image) -> str:
    """``image`` as ``data:image/png;base64,...``, the way the core sends its depth map."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def depth_gradient(size: int = 256) -> Image.Image:
    """An 8-bit grey depth map: a radial bump, like sand piled in the middle."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    depth = np.clip(1.0 - np.sqrt(xx**2 + yy**2) * 2.0, 0.0, 1.0) * 255
    return Image.fromarray(depth.astype(np.uint8))


def mean_colour(path: Path) -> np.ndarray:
    """The mean RGB of an image file."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
