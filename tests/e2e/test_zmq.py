"""The Experimance bridge inside the running Serve app, driven by a stand-in core over real ZMQ sockets."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
import zmq.asyncio
from PIL import Image

from tests.e2e.conftest import Service
from tests.experimance._core import (
    BIOMES,
    ERAS,
    CoreImageSource,
    CoreRenderRequest,
    FakeCore,
    data_url,
    depth_gradient,
)

pytestmark = pytest.mark.serve


@pytest.fixture
async def core(service: Service) -> AsyncIterator[FakeCore]:
    assert service.zmq_ports is not None
    context = zmq.asyncio.Context()
    fake = FakeCore(context)
    await fake.bind(*service.zmq_ports)
    try:
        yield fake
    finally:
        fake.close()
        context.term()


async def test_every_request_gets_one_reply_in_order(core: FakeCore, service: Service) -> None:
    pairs = list(itertools.islice(itertools.cycle(zip(ERAS, itertools.cycle(BIOMES))), 20))
    sizes = [(320, 240), (256, 256), (200, 120), (None, None)]
    sent = []
    for i, (era, biome) in enumerate(pairs):
        width, height = sizes[i % len(sizes)]
        request = CoreRenderRequest(prompt=f"a landscape {i}", era=era, biome=biome, width=width, height=height, seed=i)
        await core.send(request)
        sent.append(request)
    replies = await core.receive_many(20, timeout=180)
    assert [r.request_id for r in replies] == [s.request_id for s in sent]  # each once, in order
    for request, reply in zip(sent, replies, strict=True):
        assert (reply.era, reply.biome) == (request.era, request.biome)
        assert reply.path.is_absolute() and reply.path.exists()
        with Image.open(reply.path) as image:
            assert image.size == (request.width or 1024, request.height or 1024)
            image.verify()
    stats = httpx.get(f"{service.url}/api/v2/admin/zmq/stats", timeout=30).json()
    assert stats["replies"] >= 20 and stats["fallbacks"] == 0
    jobs = httpx.get(f"{service.url}/api/v2/images/jobs", params={"limit": 500}, timeout=30).json()["items"]
    assert sum(1 for j in jobs if j["source"] == "zmq") >= 20  # each request was a durable job


async def test_a_depth_map_changes_the_image(core: FakeCore) -> None:
    base = {"prompt": "dunes", "era": "wilderness", "biome": "desert", "width": 128, "height": 128, "seed": 7}
    plain = CoreRenderRequest(**base)
    depth = CoreRenderRequest(**base, depth_map=CoreImageSource(image_data=data_url(depth_gradient(32))))
    for request in (plain, depth):
        await core.send(request)
    a, b = await core.receive_many(2, timeout=60)
    pixels_a = np.asarray(Image.open(a.path), dtype=np.int16)
    pixels_b = np.asarray(Image.open(b.path), dtype=np.int16)
    assert np.abs(pixels_a - pixels_b).mean() > 2


async def test_clear_queue_answers_only_the_clearing_request(core: FakeCore) -> None:
    queued = [CoreRenderRequest(prompt=f"old {i}", width=512, height=512, seed=i) for i in range(4)]
    for request in queued:
        await core.send(request)
    # No pause: one PUSH socket's frames arrive in order, so the bridge has taken the old requests first, and
    # they are still rendering (20 steps each) when the clearing one lands. A pause lets a fast machine finish
    # and answer them before the clear is even sent.
    clearing = CoreRenderRequest(prompt="now", clear_queue=True, width=128, height=128, seed=99)
    await core.send(clearing)
    reply = await core.receive(timeout=60)
    assert reply.request_id == clearing.request_id
    await core.assert_silent(2.0)


async def test_malformed_frames_are_dropped_and_the_bridge_keeps_serving(core: FakeCore, service: Service) -> None:
    from hypothesis import HealthCheck, given, settings

    from tests.experimance._frames import malformed_frames

    frames: list[bytes] = []

    @settings(max_examples=400, database=None, suppress_health_check=list(HealthCheck), deadline=None)
    @given(malformed_frames)
    def collect(case: tuple[bytes, frozenset[str]]) -> None:
        frames.append(case[0])

    collect()
    before = httpx.get(f"{service.url}/api/v2/admin/zmq/stats", timeout=30).json()
    for frame in frames:
        await core.send(frame)
    await core.assert_silent(1.0)  # nothing malformed is answered
    valid = CoreRenderRequest(prompt="after the storm", width=128, height=96, seed=3)
    await core.send(valid)
    reply = await core.receive(timeout=60)
    assert reply.request_id == valid.request_id and reply.path.exists()
    after = httpx.get(f"{service.url}/api/v2/admin/zmq/stats", timeout=30).json()
    dropped = sum(after["drops"].values()) - sum(before["drops"].values())
    assert dropped == len(frames)  # each malformed frame was counted, none was rendered


async def test_a_restarted_core_loses_no_later_request(core: FakeCore) -> None:
    first = CoreRenderRequest(prompt="before", width=128, height=128, seed=1)
    await core.send(first)
    assert (await core.receive(timeout=60)).request_id == first.request_id
    await core.restart()  # the core's sockets close and bind again on the same ports
    later = [CoreRenderRequest(prompt=f"after {i}", width=128, height=128, seed=i) for i in range(3)]
    for request in later:
        await core.send(request, timeout=30)
    replies = await core.receive_many(3, timeout=90)
    assert [r.request_id for r in replies] == [r.request_id for r in later]
