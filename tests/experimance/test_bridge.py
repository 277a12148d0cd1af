"""The bridge over real sockets: a stand-in core (bound PUSH/PULL) drives a real ZmqBridge."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from PIL import Image
from pydantic import ValidationError
from zmq.utils.monitor import parse_monitor_message

from pipelines.request import GenerationRequest
from pipelines.sdxl import SDXLPipeline
from serve_app.experimance.bridge import BridgeJob, ZmqBridge
from serve_app.experimance.config import BridgeConfig
from serve_app.experimance.styles import ERA_FRAGMENTS, style_for
from tests.experimance._core import (
    BIOMES,
    ERAS,
    CoreImageSource,
    CoreRenderRequest,
    FakeCore,
    data_url,
    depth_gradient,
    eventually,
    mean_colour,
    png_bytes,
)
from tests.experimance.conftest import CancelRecorder, Painter, StartBridge, colour_for

# Sizes the core may ask for; (None, None) is what the experimance core sends (meaning 1024x1024).
SIZES: list[tuple[int | None, int | None]] = [(128, 96), (96, 128), (200, 120), (64, 64), (None, None)]


def _close(actual: np.ndarray, expected: tuple[int, int, int], tolerance: float = 6.0) -> bool:
    return bool(np.abs(actual - np.array(expected)).max() <= tolerance)


def _check_file(reply_path: Path, output_dir: Path, size: tuple[int, int], fmt: str = "JPEG") -> None:
    assert reply_path.is_absolute()
    assert reply_path.is_file(), reply_path
    assert reply_path.resolve().is_relative_to(output_dir.resolve())
    with Image.open(reply_path) as image:
        image.load()
        assert image.format == fmt
        assert image.size == size


async def test_twenty_requests_across_eras_and_biomes(
    core: FakeCore, start_bridge: StartBridge, output_dir: Path
) -> None:
    painter = Painter()
    bridge = await start_bridge(painter)
    sent: list[CoreRenderRequest] = []
    for i in range(20):
        width, height = SIZES[i % len(SIZES)]
        request = CoreRenderRequest(
            prompt=f"landscape number {i}", era=ERAS[i % 9], biome=BIOMES[i % 15], width=width, height=height, seed=i
        )
        sent.append(request)
        await core.send(request)
    replies = await core.receive_many(20)
    await core.assert_silent(0.2)

    assert [r.request_id for r in replies] == [s.request_id for s in sent]  # each once, in order
    for request, reply in zip(sent, replies, strict=True):
        assert (reply.era, reply.biome) == (request.era, request.biome)
        assert reply.prompt == request.prompt
        assert reply.uri.startswith("file:///") and "%" not in reply.uri
        size = (request.width or 1024, request.height or 1024)
        _check_file(reply.path, output_dir, size)
        assert reply.path.parent == output_dir / request.era / request.biome  # the era/biome pool
        assert _close(mean_colour(reply.path), colour_for(request.era, request.biome))
    # The render saw the request's own data and the style of its era/biome.
    job = painter.job(sent[4].request_id)
    assert (job.width, job.height, job.seed) == (1024, 1024, 4)
    assert job.style == style_for(sent[4].era, sent[4].biome)
    assert ERA_FRAGMENTS[job.era] in job.styled_prompts()[0]  # type: ignore[index]
    stats = bridge.stats()
    assert (stats.frames, stats.requests, stats.replies, stats.fallbacks) == (20, 20, 20, 0)
    assert stats.generation_count == 20 and stats.pending == 0 and stats.in_flight == 0
    latest = output_dir / "latest.jpg"
    assert latest.is_symlink() and latest.resolve() == replies[-1].path.resolve()


async def test_absent_size_fields_mean_1024(core: FakeCore, start_bridge: StartBridge, output_dir: Path) -> None:
    await start_bridge(Painter(as_bytes=True), image_format="png")
    body = json.loads(CoreRenderRequest(request_id="no-size").frame())
    del body["width"], body["height"]
    await core.send(json.dumps(body).encode())
    reply = await core.receive()
    assert reply.request_id == "no-size"
    _check_file(reply.path, output_dir, (1024, 1024), fmt="PNG")


async def test_replies_keep_request_order_when_later_renders_finish_first(
    core: FakeCore, start_bridge: StartBridge
) -> None:
    painter = Painter()
    await start_bridge(painter, max_concurrent_renders=4)
    requests = [CoreRenderRequest(width=64, height=64) for _ in range(6)]
    for request, delay in zip(requests, [0.4, 0.05, 0.25, 0.0, 0.1, 0.0], strict=True):
        painter.delays[request.request_id] = delay
    for request in requests:
        await core.send(request)
    replies = await core.receive_many(6)
    sent_ids = [r.request_id for r in requests]
    assert painter.finished != sent_ids, "renders should have finished out of order"
    assert [r.request_id for r in replies] == sent_ids


async def test_clear_queue_cancels_queued_and_in_flight(core: FakeCore, start_bridge: StartBridge) -> None:
    painter = Painter()
    cancel = CancelRecorder()
    bridge = await start_bridge(painter, cancel=cancel)
    earlier = [CoreRenderRequest(width=64, height=64) for _ in range(4)]
    painter.gates[earlier[0].request_id] = asyncio.Event()  # in flight until the end of the test
    for request in earlier:
        await core.send(request)
    await eventually(lambda: bridge.stats().requests == 4 and len(painter.jobs) == 1, what="4 received, 1 rendering")

    clearing = CoreRenderRequest(width=64, height=64, clear_queue=True)
    await core.send(clearing)
    reply = await core.receive()
    assert reply.request_id == clearing.request_id
    await core.assert_silent(0.3)

    earlier_ids = [r.request_id for r in earlier]
    assert painter.cancelled == [earlier_ids[0]]  # the in-flight render was cancelled...
    assert [job.request_id for job in painter.jobs] == [earlier_ids[0], clearing.request_id]  # ...the rest never ran
    await eventually(lambda: cancel.ids == earlier_ids, what="cancel() told")
    stats = bridge.stats()
    assert (stats.cancelled, stats.replies, stats.pending) == (4, 1, 0)


async def test_clear_queue_drops_finished_but_unsent_replies(core: FakeCore, start_bridge: StartBridge) -> None:
    painter = Painter()
    await start_bridge(painter, max_concurrent_renders=2)
    slow, done = CoreRenderRequest(width=64, height=64), CoreRenderRequest(width=64, height=64)
    painter.gates[slow.request_id] = asyncio.Event()
    await core.send(slow)
    await core.send(done)
    await eventually(lambda: painter.finished == [done.request_id], what="the later render to finish")
    clearing = CoreRenderRequest(width=64, height=64, clear_queue=True)
    await core.send(clearing)
    assert (await core.receive()).request_id == clearing.request_id
    await core.assert_silent(0.3)


async def test_failure_and_timeout_answer_with_a_neutral_fallback(
    core: FakeCore, start_bridge: StartBridge, output_dir: Path
) -> None:
    painter = Painter()
    cancel = CancelRecorder()
    bridge = await start_bridge(painter, cancel=cancel, timeout_s=0.5)
    broken = CoreRenderRequest(era="ruins", biome="tundra", width=96, height=64)
    stuck = CoreRenderRequest(era="dystopia", biome="swamp", width=64, height=96)
    painter.fail.add(broken.request_id)
    painter.hang.add(stuck.request_id)
    await core.send(broken)
    await core.send(stuck)
    first, second = await core.receive_many(2)
    assert (first.request_id, second.request_id) == (broken.request_id, stuck.request_id)
    assert (second.era, second.biome) == ("dystopia", "swamp")
    _check_file(first.path, output_dir, (96, 64))
    _check_file(second.path, output_dir, (64, 96))
    neutral = BridgeConfig(output_dir=output_dir).fallback.color
    assert _close(mean_colour(first.path), neutral) and _close(mean_colour(second.path), neutral)
    stats = bridge.stats()
    assert stats.fallbacks == 2 and stats.fallback_causes == {"error": 1, "timeout": 1}
    assert stuck.request_id in painter.cancelled  # the timed-out render was stopped...
    await eventually(lambda: cancel.ids == [stuck.request_id], what="cancel() told")  # ...and its job too


async def test_fallback_prefers_the_newest_image_of_the_same_era_and_biome(
    core: FakeCore, start_bridge: StartBridge, output_dir: Path
) -> None:
    # An image left by an earlier run (the pool on disk) ...
    pool = output_dir / "future" / "river"
    pool.mkdir(parents=True)
    Image.new("RGB", (300, 200), (10, 10, 240)).save(pool / "old.jpg")
    painter = Painter()
    await start_bridge(painter)
    # ... and one made in this run.
    good = CoreRenderRequest(era="modern", biome="desert", width=128, height=96)
    painter.colours[good.request_id] = (240, 20, 20)
    await core.send(good)
    await core.receive()

    failing = [
        CoreRenderRequest(era="modern", biome="desert", width=80, height=80),
        CoreRenderRequest(era="future", biome="river", width=80, height=80),
        CoreRenderRequest(era="modern", biome="tundra", width=80, height=80),  # same era, other biome: no pool
    ]
    painter.fail.update(r.request_id for r in failing)
    for request in failing:
        await core.send(request)
    replies = await core.receive_many(3)
    for reply in replies:
        _check_file(reply.path, output_dir, (80, 80))
    assert _close(mean_colour(replies[0].path), (240, 20, 20))
    assert _close(mean_colour(replies[1].path), (10, 10, 240))
    assert _close(mean_colour(replies[2].path), (24, 24, 24))


async def test_time_limit_counts_queue_time(core: FakeCore, start_bridge: StartBridge) -> None:
    painter = Painter()
    bridge = await start_bridge(painter, timeout_s=1.0)
    first, second = CoreRenderRequest(width=64, height=64), CoreRenderRequest(width=64, height=64)
    painter.hang.add(first.request_id)  # holds the only render slot until its own deadline
    painter.delays[second.request_id] = 0.6  # fits in 1 s on its own, not after ~1 s in the queue
    await core.send(first)
    await core.send(second)
    replies = await core.receive_many(2)
    assert [r.request_id for r in replies] == [first.request_id, second.request_id]
    assert bridge.stats().fallback_causes == {"timeout": 2}


async def test_overload_answers_at_once_with_fallbacks(core: FakeCore, start_bridge: StartBridge) -> None:
    painter = Painter()
    bridge = await start_bridge(painter, max_pending=2)
    requests = [CoreRenderRequest(width=64, height=64) for _ in range(4)]
    gate = painter.gates[requests[0].request_id] = asyncio.Event()
    for request in requests:
        await core.send(request)
    await eventually(lambda: bridge.stats().fallback_causes.get("overloaded") == 2, what="overload fallbacks")
    gate.set()
    replies = await core.receive_many(4)
    assert [r.request_id for r in replies] == [r.request_id for r in requests]
    assert [job.request_id for job in painter.jobs] == [r.request_id for r in requests[:2]]


async def test_depth_map_and_reference_image_reach_the_generator(
    core: FakeCore,
    start_bridge: StartBridge,
    output_dir: Path,
    tmp_path: Path,
    tiny_pipeline: SDXLPipeline,
) -> None:
    seen: list[BridgeJob] = []

    async def render(job: BridgeJob) -> Image.Image:
        seen.append(job)
        prompt, negative = job.styled_prompts()
        mode = "img2img" if job.init_image is not None else "txt2img"
        request = GenerationRequest(
            prompt=prompt,
            negative_prompt=negative,
            width=64,
            height=64,
            steps=3,
            seed=job.seed,
            mode=mode,
            init_image=job.init_image,
            strength=job.strength or 1.0,
            model=tiny_pipeline.model_name,
        )
        result = await asyncio.to_thread(tiny_pipeline.generate, [request])
        return result.images[0]

    refs = tmp_path / "refs"
    refs.mkdir()
    reference = Image.new("RGB", (96, 96), (250, 250, 20))
    reference.save(refs / "reference.png")
    # Generation speed is not the point here; a loaded CI machine must not turn renders into fallbacks.
    bridge = await start_bridge(render, image_format="png", allowed_dirs=[refs], timeout_s=300)

    common = {"prompt": "a valley", "era": "wilderness", "biome": "river", "seed": 7, "width": 128, "height": 96}
    plain = CoreRenderRequest(**common)
    again = CoreRenderRequest(**common)
    depth = CoreRenderRequest(**common, depth_map=CoreImageSource(image_data=data_url(depth_gradient())))
    ref = CoreRenderRequest(**common, reference_image=CoreImageSource(uri=f"file://{refs / 'reference.png'}"))
    for request in (plain, again, depth, ref):
        await core.send(request)
    replies = await core.receive_many(4, timeout=300)
    assert bridge.stats().fallbacks == 0
    assert [r.request_id for r in replies] == [r.request_id for r in (plain, again, depth, ref)]
    pixels = []
    for reply in replies:
        _check_file(reply.path, output_dir, (128, 96), fmt="PNG")
        with Image.open(reply.path) as image:
            pixels.append(np.asarray(image.convert("RGB"), dtype=np.int16))
    assert np.array_equal(pixels[0], pixels[1])  # same request, same image: the differences below are real
    assert np.abs(pixels[0] - pixels[2]).mean() > 2.0  # the depth map changed the output
    assert np.abs(pixels[0] - pixels[3]).mean() > 2.0  # the reference image changed the output
    assert np.abs(pixels[2] - pixels[3]).mean() > 2.0

    jobs = {job.request_id: job for job in seen}
    assert jobs[plain.request_id].init_image is None
    depth_job, ref_job = jobs[depth.request_id], jobs[ref.request_id]
    assert depth_job.init_kind == "depth_map" and depth_job.strength == 0.8
    assert depth_job.init_image is not None and depth_job.init_image.size == (256, 256)
    assert ref_job.init_kind == "reference_image" and ref_job.strength == 0.6
    assert ref_job.init_image is not None and ref_job.init_image.getpixel((5, 5)) == (250, 250, 20)


async def test_unusable_conditioning_is_left_out_and_still_answered(
    core: FakeCore, start_bridge: StartBridge, tmp_path: Path
) -> None:
    painter = Painter()
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(png_bytes(Image.new("L", (32, 32), 90)))
    bridge = await start_bridge(painter, allowed_dirs=[tmp_path / "allowed"])
    not_allowed = CoreRenderRequest(width=64, height=64, reference_image=CoreImageSource(uri=str(outside)))
    garbage = CoreRenderRequest(width=64, height=64, depth_map=CoreImageSource(image_data="data:image/png;base64,AAAA"))
    await core.send(not_allowed)
    await core.send(garbage)
    replies = await core.receive_many(2)
    assert [r.request_id for r in replies] == [not_allowed.request_id, garbage.request_id]
    assert all(job.init_image is None for job in painter.jobs)
    assert bridge.stats().conditioning_errors == {"image_not_allowed": 1, "bad_image": 1}


async def test_malformed_frames_are_counted_and_dropped(core: FakeCore, start_bridge: StartBridge) -> None:
    bridge = await start_bridge(Painter(), max_frame_bytes=2048)
    valid = CoreRenderRequest(width=64, height=64)
    frames = [
        b"\xff\xfe",  # not UTF-8
        b"{not json",
        b"[1, 2]",
        b'{"request_id": "x"}',
        b'{"type": "AudioRenderRequest", "request_id": "x"}',
        CoreRenderRequest().frame().replace(b'"era"', b'"Era"'),
        CoreRenderRequest().frame().replace(b'"modern"', b'"MODERN"'),
        CoreRenderRequest().frame().replace(b'"width":1024', b'"width":0'),
        CoreRenderRequest(prompt="x" * 4000).frame(),
        valid.frame(),
        valid.frame(),  # a reused id is never answered twice
    ]
    for frame in frames:
        await core.send(frame)
    assert (await core.receive()).request_id == valid.request_id
    await core.assert_silent(0.2)
    stats = bridge.stats()
    assert stats.drops == {
        "not_utf8": 1,
        "not_json": 1,
        "not_object": 1,
        "missing_type": 1,
        "unsupported_type": 1,
        "missing_field": 1,
        "invalid_field": 1,
        "bad_size": 1,
        "oversize": 1,
        "duplicate_id": 1,
    }
    assert (stats.frames, stats.requests, stats.replies) == (11, 1, 1)


async def test_a_two_frame_message_is_read_as_two_messages(core: FakeCore, start_bridge: StartBridge) -> None:
    """Like the installation's PULL: the topic frame fails to parse, the JSON frame is answered."""
    bridge = await start_bridge(Painter())
    request = CoreRenderRequest(width=64, height=64)
    assert core.push is not None
    await core.push.send_multipart([b"RenderRequest", request.frame()])
    assert (await core.receive()).request_id == request.request_id
    assert bridge.stats().drops == {"not_json": 1}


async def test_core_restart_loses_no_later_request(core: FakeCore, start_bridge: StartBridge) -> None:
    painter = Painter()
    bridge = await start_bridge(painter)
    before = CoreRenderRequest(width=64, height=64)
    await core.send(before)
    assert (await core.receive()).request_id == before.request_id

    await core.restart()
    after = [CoreRenderRequest(width=64, height=64) for _ in range(3)]
    for request in after:
        await core.send(request, timeout=5.0)  # waits for the bridge to reconnect, as the core's send does
    replies = await core.receive_many(3)
    assert [r.request_id for r in replies] == [r.request_id for r in after]

    # A reply made while the core is down waits in the bridge's pipe and arrives once it is back.
    during = CoreRenderRequest(width=64, height=64)
    gate = painter.gates[during.request_id] = asyncio.Event()
    await core.send(during)
    await eventually(lambda: len(painter.jobs) == 5, what="the render to start")
    core.close()
    gate.set()
    await eventually(lambda: bridge.stats().replies == 5, what="the reply to be queued")
    await core.bind(core.request_port, core.result_port)
    assert (await core.receive()).request_id == during.request_id
    assert bridge.healthy


async def test_bridge_started_before_the_core_never_binds(
    zmq_context: object, output_dir: Path, unused_ports: tuple[int, int]
) -> None:
    request_port, result_port = unused_ports
    config = BridgeConfig(
        host="127.0.0.1", request_port=request_port, result_port=result_port, output_dir=output_dir, linger_ms=0
    )
    async with ZmqBridge(config, Painter()) as bridge:
        late_core = FakeCore(zmq_context)  # type: ignore[arg-type]
        await late_core.bind(request_port, result_port)  # would fail if the bridge had bound either port
        try:
            request = CoreRenderRequest(width=64, height=64)
            await late_core.send(request)
            assert (await late_core.receive()).request_id == request.request_id
        finally:
            late_core.close()
        assert bridge.stats().replies == 1
    assert not bridge.running


async def test_health_file_in_the_installation_format(
    core: FakeCore, start_bridge: StartBridge, tmp_path: Path
) -> None:
    health = tmp_path / "health" / "image_server.json"
    painter = Painter()
    bridge = await start_bridge(painter, health_file=health, health_interval_s=0.05, latest_symlink=False)

    def _read() -> dict[str, object]:
        return json.loads(health.read_text())

    await eventually(health.exists, what="the health file")
    first = _read()
    assert list(first) == [
        "service_name",
        "overall_status",
        "checks",
        "last_updated",
        "uptime",
        "restart_count",
        "error_count",
        "last_check",
    ]
    assert first["service_name"] == "image_server" and first["overall_status"] == "healthy"
    assert isinstance(first["checks"], list) and first["checks"][0]["status"] == "healthy"
    datetime.fromisoformat(str(first["last_check"]))  # naive ISO 8601, as the health service parses it
    await eventually(lambda: _read()["last_check"] != first["last_check"], what="a refresh")

    failing = CoreRenderRequest(width=64, height=64)
    painter.fail.add(failing.request_id)
    await core.send(failing)
    await core.receive()
    await eventually(lambda: _read()["overall_status"] == "warning", what="a warning after a fallback")
    assert _read()["error_count"] == 1
    await bridge.stop()
    assert not os.path.lexists(bridge.output_dir / "latest.jpg")


async def test_styles_can_be_switched_off(core: FakeCore, start_bridge: StartBridge) -> None:
    painter = Painter()
    await start_bridge(painter, styles_enabled=False)
    request = CoreRenderRequest(prompt="just this", negative_prompt="not that", width=64, height=64)
    await core.send(request)
    await core.receive()
    job = painter.job(request.request_id)
    assert job.style is None and job.styled_prompts() == ("just this", "not that")


@pytest.mark.parametrize("schema_variant", ["fire", "base"])
async def test_variants_without_era_and_biome(
    core: FakeCore, start_bridge: StartBridge, output_dir: Path, tmp_path: Path, schema_variant: str
) -> None:
    painter = Painter()
    reference = tmp_path / "ref.png"
    reference.write_bytes(png_bytes(Image.new("RGB", (40, 40), (0, 200, 0))))
    await start_bridge(painter, schema_variant=schema_variant, allowed_dirs=[tmp_path])
    body = {
        "type": "RenderRequest",
        "request_id": "abc_tile_3",
        "prompt": "a fire story",
        "width": 160,
        "height": 96,
        "clear_queue": True,
        "reference_image": {"image_data": None, "uri": f"file://{reference}"},
        "strength": 0.35,
    }
    await core.send(json.dumps(body).encode())
    assert core.pull is not None
    raw = await asyncio.wait_for(core.pull.recv(), 10)
    reply = json.loads(raw)
    assert list(reply) == ["type", "request_id", "uri", "prompt"]  # no era/biome outside experimance
    assert reply["request_id"] == "abc_tile_3"
    path = Path(reply["uri"].removeprefix("file://"))
    _check_file(path, output_dir, (160, 96))
    assert path.parent == output_dir
    job = painter.job("abc_tile_3")
    assert job.era is None and job.style is None and job.init_kind == "reference_image"
    assert job.strength == (0.35 if schema_variant == "fire" else 0.6)


@pytest.fixture
def unused_ports() -> tuple[int, int]:
    """Two TCP ports that were free a moment ago."""
    import socket

    ports = []
    holders = []
    for _ in range(2):
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holders.append(holder)
        ports.append(holder.getsockname()[1])
    for holder in holders:
        holder.close()
    return ports[0], ports[1]


async def test_a_render_that_ignores_cancellation_does_not_hold_later_replies(
    core: FakeCore, start_bridge: StartBridge
) -> None:
    release = asyncio.Event()

    async def stubborn(job: BridgeJob) -> Image.Image:
        if job.request_id == "stubborn":
            while not release.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await release.wait()
        return Image.new("RGB", (8, 8))

    bridge = await start_bridge(stubborn, timeout_s=0.3)
    await core.send(CoreRenderRequest(request_id="stubborn", width=64, height=64))
    assert (await core.receive(timeout=5)).request_id == "stubborn"  # a fallback, at the deadline
    # The stubborn render is still going, yet its slot is free again.
    await core.send(CoreRenderRequest(request_id="next", width=64, height=64))
    assert (await core.receive(timeout=5)).request_id == "next"
    assert not release.is_set()
    release.set()
    assert bridge.stats().fallback_causes == {"timeout": 1}


async def test_a_large_frame_is_decoded_and_answered(core: FakeCore, start_bridge: StartBridge) -> None:
    painter = Painter()
    bridge = await start_bridge(painter)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8))
    request = CoreRenderRequest(width=64, height=64, depth_map=CoreImageSource(image_data=data_url(noise)))
    assert len(request.frame()) > 1024 * 1024
    small = CoreRenderRequest(width=64, height=64)
    await core.send(request)
    await core.send(small)
    replies = await core.receive_many(2)
    assert [r.request_id for r in replies] == [request.request_id, small.request_id]
    depth = painter.job(request.request_id).depth_map
    assert depth is not None and depth.size == (700, 700)
    assert bridge.stats().drops == {}


# -- bounds (issue 8: findings 3 and 9) --------------------------------------------------------------------------


async def test_a_message_over_the_zmq_limit_is_never_read_and_the_bridge_answers_after_reconnecting(
    core: FakeCore, start_bridge: StartBridge
) -> None:
    """ZMQ_MAXMSGSIZE: the frame never reaches the bridge (not counted as a frame), the connection is dropped."""
    bridge = await start_bridge(Painter(), max_frame_bytes=4096, max_message_bytes=8192)
    assert bridge._pull is not None
    assert bridge._pull.getsockopt(zmq.MAXMSGSIZE) == 8192 == bridge.config.zmq_max_message_bytes
    assert core.push is not None
    monitor = core.push.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        await eventually(lambda: bridge.stats().connects == 1, what="the bridge to connect")
        await core.send(b"x" * (8 * 1024 * 1024))  # 8 MiB, a thousand times the limit
        seen: list[int] = []
        while zmq.EVENT_DISCONNECTED not in seen or seen[-1] != zmq.EVENT_HANDSHAKE_SUCCEEDED:
            seen.append(parse_monitor_message(await asyncio.wait_for(monitor.recv_multipart(), 15))["event"])
        await eventually(lambda: bridge.stats().disconnects == 1, what="the bridge to see the drop")
        request = CoreRenderRequest(width=64, height=64)
        await core.send(request)
        assert (await core.receive()).request_id == request.request_id
    finally:
        core.push.disable_monitor()
        monitor.close(linger=0)
    stats = bridge.stats()
    assert (stats.frames, stats.drops, stats.replies) == (1, {}, 1)  # the big frame was never received


async def test_a_frame_over_max_frame_bytes_but_within_the_zmq_limit_is_counted_and_dropped(
    core: FakeCore, start_bridge: StartBridge
) -> None:
    bridge = await start_bridge(Painter(), max_frame_bytes=4096)
    assert bridge.config.zmq_max_message_bytes == 4096 + 1024 * 1024
    await core.send(CoreRenderRequest(prompt="x" * 600, negative_prompt="y" * 1500 * 3).frame()[:8000])
    request = CoreRenderRequest(width=64, height=64)
    await core.send(request)
    assert (await core.receive()).request_id == request.request_id  # same connection: nothing lost
    assert bridge.stats().drops == {"oversize": 1} and bridge.stats().disconnects == 0


async def test_the_receive_high_water_mark_is_bounded_and_configurable(
    core: FakeCore, start_bridge: StartBridge
) -> None:
    default = await start_bridge(Painter())
    assert default._pull is not None and default._pull.getsockopt(zmq.RCVHWM) == 16  # libzmq's default: 1000
    tuned = await start_bridge(Painter(), receive_hwm=3)
    assert tuned._pull is not None and tuned._pull.getsockopt(zmq.RCVHWM) == 3
    with pytest.raises(ValidationError):
        BridgeConfig(output_dir=Path("x"), receive_hwm=0)
    with pytest.raises(ValidationError):
        BridgeConfig(output_dir=Path("x"), max_frame_bytes=8192, max_message_bytes=4096)


async def test_a_prompt_over_the_limit_is_counted_and_dropped_and_the_next_is_answered(
    core: FakeCore, start_bridge: StartBridge
) -> None:
    painter = Painter()
    bridge = await start_bridge(painter, max_prompt_chars=100)
    long = CoreRenderRequest(prompt="p" * 101, width=64, height=64)
    fine = CoreRenderRequest(prompt="p" * 100, width=64, height=64)
    await core.send(long)
    await core.send(fine)
    assert (await core.receive()).request_id == fine.request_id
    await core.assert_silent(0.2)
    assert bridge.stats().drops == {"invalid_field": 1}
    assert [job.request_id for job in painter.jobs] == [fine.request_id]  # the long one never reached a render


async def test_fallbacks_are_bounded_by_their_own_slots(core: FakeCore, start_bridge: StartBridge) -> None:
    painter = Painter()
    first = CoreRenderRequest(width=64, height=64)
    painter.gates[first.request_id] = asyncio.Event()  # holds the render slot, so the rest are overloaded
    bridge = await start_bridge(painter, max_pending=1, max_concurrent_fallbacks=2, timeout_s=60)
    release = threading.Event()
    lock = threading.Lock()
    active = [0, 0]  # now, peak
    write_fallback = bridge._outputs.write_fallback

    def slow_fallback(*args: Any, **kwargs: Any) -> Path:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        try:
            release.wait(30)
            return write_fallback(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    bridge._outputs.write_fallback = slow_fallback  # type: ignore[method-assign]
    await core.send(first)
    overloaded = [CoreRenderRequest(width=64, height=64) for _ in range(5)]
    for request in overloaded:
        await core.send(request)
    await eventually(lambda: active[0] == 2, what="two fallbacks to start")
    await asyncio.sleep(0.3)  # room for more to start, if anything let them
    assert active == [2, 2]
    release.set()
    painter.gates[first.request_id].set()
    replies = await core.receive_many(6)
    assert [r.request_id for r in replies] == [first.request_id] + [r.request_id for r in overloaded]
    assert active[1] == 2 and bridge.stats().fallback_causes == {"overloaded": 5}


async def test_the_bridge_applies_its_retention_policy(
    core: FakeCore, start_bridge: StartBridge, output_dir: Path
) -> None:
    pool = output_dir / "modern" / "desert"
    pool.mkdir(parents=True)
    old = time.time() - 3600
    for i in range(5):
        path = pool / f"limner_2020010{i}_000000_old-{i}.jpg"
        path.write_bytes(png_bytes(Image.new("RGB", (8, 8), (i, i, i))))
        os.utime(path, (old + i, old + i))
    stock = pool / "mockimagegenerator_old.jpg"  # the installation's own file: never touched
    stock.write_bytes(b"not ours")
    os.utime(stock, (old - 10, old - 10))
    bridge = await start_bridge(Painter(), retention={"max_files": 2, "min_age_s": 60, "interval_s": 3600})
    await eventually(lambda: bridge.stats().retention_removed == 3, what="the first retention round")
    assert sorted(p.name for p in pool.iterdir()) == sorted(
        ["limner_20200103_000000_old-3.jpg", "limner_20200104_000000_old-4.jpg", stock.name]
    )
