"""Property-based fuzzing of frames: the codec, then a live bridge over real sockets."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import zmq
from hypothesis import HealthCheck, given, settings

from serve_app.experimance.bridge import BridgeStats, ZmqBridge
from serve_app.experimance.config import BridgeConfig
from serve_app.experimance.protocol import ExperimanceRenderRequest, FrameError, decode_frame, encode_image_ready
from tests.experimance._core import CoreImageReady, CoreRenderRequest
from tests.experimance._frames import MAX_FRAME, MAX_SIZE, Case, malformed_frames, mutated_bodies, valid_bodies
from tests.experimance.conftest import Painter

T = TypeVar("T")

_FUZZ: dict[str, Any] = {
    "database": None,  # nothing written under the repository
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
}


def _decode(frame: bytes) -> ExperimanceRenderRequest:
    request = decode_frame(frame, "experimance", max_bytes=MAX_FRAME, max_size=MAX_SIZE)
    assert isinstance(request, ExperimanceRenderRequest)
    return request


@settings(max_examples=1000, **_FUZZ)
@given(case=malformed_frames)
def test_malformed_frames_raise_frame_error_with_their_reason(case: Case) -> None:
    frame, reasons = case
    with pytest.raises(FrameError) as caught:
        _decode(frame)
    assert caught.value.reason in reasons, (caught.value, reasons)
    assert str(caught.value)  # the log line can always be made


@settings(max_examples=300, **_FUZZ)
@given(body=valid_bodies)
def test_valid_requests_decode_and_answer_byte_compatibly(body: dict[str, Any]) -> None:
    request = _decode(json.dumps(body).encode("utf-8"))
    reply = encode_image_ready(request, "/srv/out/image.jpg")
    expected = {
        "type": "ImageReady",
        "request_id": body["request_id"],
        "uri": "file:///srv/out/image.jpg",
        "prompt": body["prompt"],
        "era": body["era"],
        "biome": body["biome"],
    }
    # Compact, in schema order, UTF-8 rather than \u escapes: what model_dump_json() sends.
    assert reply == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    CoreImageReady.model_validate(json.loads(reply))


@settings(max_examples=500, **_FUZZ)
@given(body=mutated_bodies())
def test_mutated_requests_decode_or_raise_frame_error(body: dict[str, Any]) -> None:
    try:
        request = _decode(json.dumps(body).encode("utf-8"))
    except FrameError as error:
        assert error.reason != "oversize" or len(json.dumps(body)) > MAX_FRAME
        return
    assert 8 <= request.size[0] <= MAX_SIZE and 8 <= request.size[1] <= MAX_SIZE
    CoreImageReady.model_validate(json.loads(encode_image_ready(request, "/x.jpg")))


class _BridgeThread:
    """A bridge on its own event loop in a thread, so a synchronous hypothesis test can drive it."""

    def __init__(self, config: BridgeConfig) -> None:
        self.painter = Painter()
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bridge-loop", daemon=True)
        self._bridge: ZmqBridge | None = None

    def __enter__(self) -> _BridgeThread:
        self._thread.start()
        self._bridge = self._call(self._start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bridge is not None:
            self._call(self._bridge.stop())
        self._call(self._loop.shutdown_default_executor())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> ZmqBridge:
        bridge = ZmqBridge(self._config, self.painter)
        await bridge.start()
        return bridge

    async def _stats(self) -> tuple[BridgeStats, bool]:
        assert self._bridge is not None
        return self._bridge.stats(), self._bridge.healthy

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def stats(self) -> tuple[BridgeStats, bool]:
        """The bridge's stats and whether its loops are alive, read on its own loop."""
        return self._call(self._stats())


@pytest.fixture
def sync_core() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    """A synchronous core: PUSH (requests) and PULL (results) bound on free ports."""
    context = zmq.Context()
    push, pull = context.socket(zmq.PUSH), context.socket(zmq.PULL)
    for sock in (push, pull):
        sock.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.SNDTIMEO, 10_000)
    push.bind_to_random_port("tcp://127.0.0.1")
    pull.bind_to_random_port("tcp://127.0.0.1")
    yield push, pull
    push.close()
    pull.close()
    context.term()


def _port(sock: zmq.Socket[bytes]) -> int:
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return int(endpoint.rsplit(":", 1)[1])


def test_thousands_of_malformed_frames_then_a_valid_request_is_answered(
    sync_core: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], tmp_path: Path
) -> None:
    push, pull = sync_core
    config = BridgeConfig(
        host="127.0.0.1",
        request_port=_port(push),
        result_port=_port(pull),
        output_dir=tmp_path / "out",
        max_frame_bytes=MAX_FRAME,
        max_size=MAX_SIZE,
        linger_ms=0,
    )
    sent = 0

    with _BridgeThread(config) as bridge:

        @settings(max_examples=2000, **_FUZZ)
        @given(case=malformed_frames)
        def each_frame_is_dropped_for_its_reason(case: Case) -> None:
            nonlocal sent
            frame, reasons = case
            before, _ = bridge.stats()
            push.send(frame)
            sent += 1
            deadline = time.monotonic() + 10
            while (after := bridge.stats())[0].frames < sent:
                assert time.monotonic() < deadline, "the bridge stopped reading frames"
                time.sleep(0.0002)
            stats, healthy = after
            assert healthy and stats.requests == 0
            new = {k: n - before.drops.get(k, 0) for k, n in stats.drops.items() if n != before.drops.get(k, 0)}
            assert len(new) == 1 and set(new) <= reasons and sum(new.values()) == 1, (new, reasons)

        each_frame_is_dropped_for_its_reason()
        assert sent >= 1000

        request = CoreRenderRequest(width=64, height=64)
        push.send(request.frame())
        assert pull.poll(15_000), "no reply to the valid request"
        reply = CoreImageReady.model_validate(json.loads(pull.recv()))
        assert reply.request_id == request.request_id and reply.path.is_file()
        assert not pull.poll(200), "a malformed frame was answered"
        stats, healthy = bridge.stats()
        assert healthy and (stats.requests, stats.replies) == (1, 1)
        assert sum(stats.drops.values()) == sent
