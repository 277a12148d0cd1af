"""The ZMQ bridge: a worker on the Experimance bus that answers every ``RenderRequest`` with an ``ImageReady``.

Plain asyncio, no Ray: the Serve deployment wraps a :class:`ZmqBridge` and injects the coroutine that renders
(later: one that creates a durable job and awaits it). What the bridge guarantees, following section 7 of
docs/EXPERIMANCE_PROTOCOL.md:

- it **connects** a PULL to the core's request port and a PUSH to its result port and never binds; the
  sockets are made once and left to ZMQ's own reconnection, so a restarting core loses nothing the bridge
  has not already handed to the kernel;
- frames are single UTF-8 JSON frames; malformed ones are logged, counted by reason and dropped, and the
  receive loop keeps going; a message over ``zmq_max_message_bytes`` is never read (ZMQ_MAXMSGSIZE: ZMQ drops
  the connection and the bridge reconnects, logged and counted as a disconnect), and at most
  ``receive_hwm`` messages wait inside ZMQ;
- exactly one ``ImageReady`` per request id, sent in request order: a later request that finishes first
  waits for the earlier one's reply;
- ``clear_queue`` cancels every queued and in-flight request before it; those get no reply;
- the time limit counts queue time, as the installation's own server does; on failure or timeout the request
  is still answered, with the newest image of the same era and biome or a neutral image;
- images are written atomically (temp file + ``os.replace``) at the requested size, and the reply's ``uri``
  is ``file://`` + the absolute, un-encoded path; at most ``max_concurrent_fallbacks`` fallback images are made
  at once, and old images are removed by the retention policy every ``retention.interval_s``.

This module is the receive/order/send loop. The files are :class:`~serve_app.experimance.outputs.OutputFolder`
(pools, encoding, fallback images, ``latest.<ext>``), the health file is :mod:`serve_app.experimance.health`,
and the configuration is :mod:`serve_app.experimance.config`.

Task layout (one event loop)::

    receive loop ──decode──► entry (task: wait for a render slot ─► build job ─► render ─► encode ─► write)
                                │                                         └── failure/timeout ─► fallback
                                ▼
    send loop: awaits entries strictly in arrival order, skips cancelled ones, sends, re-points latest.<ext>
    health loop (health.py): rewrites the installation-format health file every ``health_interval_s``
    retention loop: OutputFolder.prune() in a worker thread, at start and every ``retention.interval_s``
    monitor loop: counts and logs the PULL's connections and disconnections
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import zmq
import zmq.asyncio
from PIL import Image
from zmq.utils.monitor import parse_monitor_message

from pipelines.styles import Style, apply_style
from serve_app.experimance.config import BridgeConfig
from serve_app.experimance.health import HealthProbe, health_loop
from serve_app.experimance.outputs import OutputFolder
from serve_app.experimance.protocol import (
    Biome,
    Era,
    FireRenderRequest,
    FrameError,
    ImageSource,
    RenderRequest,
    decode_frame,
    encode_image_ready,
    load_image_source,
    request_era_biome,
)
from serve_app.experimance.styles import style_for

__all__ = [
    "BridgeJob",
    "BridgeStats",
    "CancelFn",
    "RenderFn",
    "RenderResult",
    "ZmqBridge",
]

logger = logging.getLogger("ray.serve.limner.experimance")

RenderResult = bytes | Image.Image
"""What a render returns: an encoded image (any format PIL reads) or a PIL image."""

_INLINE_DECODE_BYTES = 1024 * 1024  # larger frames are parsed in a worker thread, off the event loop


@dataclass(frozen=True)
class BridgeJob:
    """One request, as the render coroutine sees it (plain data: it may cross a Ray handle).

    Attributes:
        request_id: The core's id.
        prompt: The prompt the core sent (the style is not applied yet; see :meth:`styled_prompts`).
        negative_prompt: The core's negative prompt, ``""`` when null.
        width: Requested width (1024 when null or absent).
        height: Requested height (1024 when null or absent).
        seed: The request's seed modulo 2**63, or one derived from the request id when null.
        era: The era (experimance variant), else None.
        biome: The biome (experimance variant), else None.
        init_image: Image-to-image start: the reference image if given, else the depth map.
        init_kind: ``"reference_image"``, ``"depth_map"`` or None.
        strength: img2img strength when there is an init image.
        depth_map: The depth map, also when a reference image is the init image (for depth conditioning).
        style: The era/biome style to apply, None when styles are off or there is no era/biome.
        style_hint: The request's free-form ``style`` field.
        generator: The request's ``generator`` name (None: the configured default).
        received_at: When the bridge received the request, epoch seconds.
        deadline: When the answer is due, epoch seconds (``received_at + timeout_s``).
    """

    request_id: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int
    era: Era | None = None
    biome: Biome | None = None
    init_image: Image.Image | None = field(default=None, repr=False, compare=False)
    init_kind: Literal["depth_map", "reference_image"] | None = None
    strength: float | None = None
    depth_map: Image.Image | None = field(default=None, repr=False, compare=False)
    style: Style | None = None
    style_hint: str | None = None
    generator: str | None = None
    received_at: float = 0.0
    deadline: float = 0.0

    def styled_prompts(self) -> tuple[str, str]:
        """``(prompt, negative_prompt)`` with :attr:`style` applied, or as sent when there is none."""
        if self.style is None:
            return self.prompt, self.negative_prompt
        return apply_style(self.style, self.prompt, self.negative_prompt)


RenderFn = Callable[[BridgeJob], Awaitable[RenderResult]]
"""Renders one job; raising (or exceeding the deadline) makes the bridge answer with a fallback."""

CancelFn = Callable[[list[str]], Awaitable[None]]
"""Told the ids of renders the bridge gave up on (``clear_queue`` or timeout), so their work can stop."""


@dataclass
class BridgeStats:
    """Counters and gauges of one bridge (a snapshot from :meth:`ZmqBridge.stats`).

    Attributes:
        frames: Frames received.
        requests: Valid requests accepted.
        replies: ``ImageReady`` sent.
        fallbacks: Replies with a fallback image; ``fallback_causes`` splits them (timeout, error, overloaded).
        cancelled: Requests dropped by a later ``clear_queue`` (never answered).
        unanswered: Requests that could not be answered at all (not even a fallback could be written).
        send_failures: Replies that could not be handed to the result socket in time.
        drops: Frames dropped, by :data:`~serve_app.experimance.protocol.FrameErrorReason` (plus
            ``internal_error``).
        connects: Connections of the PULL to the core made (reconnections included).
        disconnects: Connections of the PULL lost: the core went away, or sent a message over
            ``zmq_max_message_bytes`` (ZMQ drops the connection without handing the bridge any of it).
        retention_removed: Old images removed by the retention policy.
        conditioning_errors: depth maps / reference images ignored (the request was still rendered), by reason.
        renders_ok: Renders that returned a usable image.
        queue_seconds_total: Sum of the time requests waited for a render slot.
        generation_seconds_total: Sum of the time renders took (``generation_count`` of them).
        generation_count: Renders started.
        reply_seconds_total: Sum of receive-to-send time over ``replies``.
        pending: Requests received and not answered yet.
        in_flight: Renders running now.
    """

    frames: int = 0
    requests: int = 0
    replies: int = 0
    fallbacks: int = 0
    fallback_causes: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    unanswered: int = 0
    send_failures: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    connects: int = 0
    disconnects: int = 0
    retention_removed: int = 0
    conditioning_errors: dict[str, int] = field(default_factory=dict)
    renders_ok: int = 0
    queue_seconds_total: float = 0.0
    generation_seconds_total: float = 0.0
    generation_count: int = 0
    reply_seconds_total: float = 0.0
    pending: int = 0
    in_flight: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The stats as plain JSON-able data."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Reply:
    frame: bytes
    path: Path
    fallback: bool


@dataclass(eq=False)
class _Entry:
    """A received request until its reply is sent (or it is cancelled)."""

    request: RenderRequest
    received: float  # loop time
    received_wall: float  # epoch seconds
    deadline: float  # loop time
    task: asyncio.Task[_Reply | None] | None = None
    started: bool = False
    cancelled: bool = False


class ZmqBridge:
    """A worker on the Experimance bus: connects PULL and PUSH to the core and answers every request.

    Args:
        config: The bridge configuration.
        render: Coroutine that renders a :class:`BridgeJob` to image bytes or a PIL image.
        cancel: Coroutine told which request ids were given up (``clear_queue`` or timeout); optional.
        context: A ZMQ asyncio context to share; by default the bridge makes and terminates its own.
    """

    def __init__(
        self,
        config: BridgeConfig,
        render: RenderFn,
        *,
        cancel: CancelFn | None = None,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self._config = config
        self._render = render
        self._cancel = cancel
        self._given_context = context
        self._context: zmq.asyncio.Context | None = None
        self._pull: zmq.asyncio.Socket | None = None
        self._push: zmq.asyncio.Socket | None = None
        self._outputs = OutputFolder(
            config.output_dir,
            image_format=config.image_format,
            jpeg_quality=config.jpeg_quality,
            fallback=config.fallback,
            max_source_bytes=config.max_image_bytes,
            max_source_pixels=config.max_image_pixels,
        )
        self._stats = BridgeStats()
        self._order: deque[_Entry] = deque()
        self._seen: OrderedDict[str, None] = OrderedDict()
        # Made in start(), inside the loop that runs the bridge.
        self._wake: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._fallback_slots: asyncio.Semaphore | None = None
        self._monitor: zmq.asyncio.Socket | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._started_wall = 0.0
        self._last_reply_fallback = False
        self._running = False

    @property
    def config(self) -> BridgeConfig:
        """The configuration the bridge runs with."""
        return self._config

    @property
    def output_dir(self) -> Path:
        """The absolute output directory (resolved at :meth:`start`)."""
        return self._outputs.root

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    @property
    def healthy(self) -> bool:
        """True while running with its receive and send loops alive."""
        return self._running and all(not task.done() for task in self._loops)

    def stats(self) -> BridgeStats:
        """A snapshot of the counters."""
        snapshot = dataclasses.replace(
            self._stats,
            fallback_causes=dict(self._stats.fallback_causes),
            drops=dict(self._stats.drops),
            conditioning_errors=dict(self._stats.conditioning_errors),
        )
        snapshot.pending = len(self._order)
        return snapshot

    async def __aenter__(self) -> ZmqBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Creates the output directory, connects both sockets and starts the loops.

        Raises:
            RuntimeError: The bridge is already running.
            zmq.ZMQError: An endpoint is malformed.
        """
        if self._running:
            raise RuntimeError("the bridge is already running")
        config = self._config
        await asyncio.to_thread(self._outputs.prepare)
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(config.max_concurrent_renders)
        self._fallback_slots = asyncio.Semaphore(config.max_concurrent_fallbacks)
        self._context = self._given_context or zmq.asyncio.Context()
        try:
            self._pull = self._socket(zmq.PULL)
            # Set before connect: they apply to the connections made after.
            self._pull.setsockopt(zmq.MAXMSGSIZE, config.zmq_max_message_bytes)
            self._pull.setsockopt(zmq.RCVHWM, config.receive_hwm)
            self._monitor = self._pull.get_monitor_socket(
                zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
            )
            self._pull.connect(config.endpoint(config.request_port))
            self._push = self._socket(zmq.PUSH)
            self._push.connect(config.endpoint(config.result_port))
        except zmq.ZMQError:
            self._close_sockets()
            raise
        self._started_wall = time.time()
        self._running = True
        self._loops = [
            asyncio.create_task(self._receive_loop(), name="limner-bridge-receive"),
            asyncio.create_task(self._send_loop(), name="limner-bridge-send"),
            asyncio.create_task(self._retention_loop(), name="limner-bridge-retention"),
        ]
        monitor = asyncio.create_task(self._monitor_loop(), name="limner-bridge-monitor")
        self._side_tasks.add(monitor)  # not a loop the bridge's health depends on
        monitor.add_done_callback(self._side_tasks.discard)
        if config.health_file is not None:
            health = health_loop(
                config.health_file,
                self._health_probe,
                service_name=config.health_service_name,
                interval_s=config.health_interval_s,
                started_at=self._started_wall,
            )
            self._loops.append(asyncio.create_task(health, name="limner-bridge-health"))
        logger.info(
            "bridge connected: PULL %s, PUSH %s, schema %s, output %s",
            config.endpoint(config.request_port),
            config.endpoint(config.result_port),
            config.schema_variant,
            self._outputs.root,
        )

    async def stop(self) -> None:
        """Cancels everything pending (no replies for it), closes the sockets; safe to call twice."""
        if not self._running:
            return
        self._running = False
        tasks: list[asyncio.Task[Any]] = [*self._loops, *self._side_tasks]
        tasks += [entry.task for entry in self._order if entry.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # Renders are detached (see _detached), so this only waits for the bridge's own tasks.
            _, stuck = await asyncio.wait(tasks, timeout=5.0)
            if stuck:
                logger.warning("%d bridge tasks did not stop within 5 s", len(stuck))
        self._order.clear()
        self._loops = []
        self._close_sockets()
        if self._context is not None and self._given_context is None:
            # term() waits up to linger_ms for unsent replies; keep it off the event loop.
            await asyncio.to_thread(self._context.term)
        self._context = None
        logger.info("bridge stopped: %s", self._stats.as_dict())

    def _socket(self, kind: int) -> zmq.asyncio.Socket:
        assert self._context is not None  # set by start(); internal invariant, not input checking
        config = self._config
        sock = self._context.socket(kind)
        sock.setsockopt(zmq.LINGER, config.linger_ms)
        sock.setsockopt(zmq.RECONNECT_IVL, config.reconnect_ivl_ms)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, config.reconnect_ivl_max_ms)
        if config.heartbeat_ivl_ms:
            sock.setsockopt(zmq.HEARTBEAT_IVL, config.heartbeat_ivl_ms)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, config.heartbeat_timeout_ms)
        if ":" in config.host:
            sock.setsockopt(zmq.IPV6, 1)
        # No ZMQ_IMMEDIATE on the PUSH: with it, replies queued while the core restarts would be dropped
        # with the old connection instead of waiting in the pipe for the reconnection.
        return sock

    def _close_sockets(self) -> None:
        if self._monitor is not None:
            if self._pull is not None and not self._pull.closed:
                self._pull.disable_monitor()
            self._monitor.close(linger=0)  # before the context's term(), which would wait for it
            self._monitor = None
        for sock in (self._pull, self._push):
            if sock is not None and not sock.closed:
                sock.close(linger=self._config.linger_ms)
        self._pull = self._push = None

    async def _monitor_loop(self) -> None:
        """Counts the PULL's connections; a lost one is logged and, if ZMQ does not retry it, re-made.

        ZMQ retries a connection the core closed, but drops for good one it closed itself for a protocol error,
        and a message over ZMQ_MAXMSGSIZE is one: without a fresh connect() the bridge would stay deaf.
        """
        assert self._monitor is not None
        monitor = self._monitor
        retried = asyncio.Event()
        while True:
            try:
                event = parse_monitor_message(await monitor.recv_multipart())
            except zmq.ZMQError:
                return  # closed by stop()
            except Exception:
                logger.exception("unreadable monitor event")
                continue
            if event["event"] in (zmq.EVENT_CONNECTED, zmq.EVENT_CONNECT_RETRIED):
                retried.set()
            if event["event"] == zmq.EVENT_CONNECTED:
                self._stats.connects += 1
                logger.info("PULL connected to %s", event["endpoint"].decode(errors="replace"))
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._stats.disconnects += 1
                retried = asyncio.Event()
                task = asyncio.create_task(self._reconnect_unless_retried(retried), name="limner-bridge-reconnect")
                self._side_tasks.add(task)
                task.add_done_callback(self._side_tasks.discard)
                logger.warning(
                    "PULL lost its connection to %s (the core went away, or sent a message over %d bytes, "
                    "which ZMQ refuses to read); reconnecting",
                    event["endpoint"].decode(errors="replace"),
                    self._config.zmq_max_message_bytes,
                )

    async def _reconnect_unless_retried(self, retried: asyncio.Event) -> None:
        # ZMQ announces its own retry (CONNECT_RETRIED) at once; give it a generous moment before stepping in.
        try:
            await asyncio.wait_for(retried.wait(), 1.0 + self._config.reconnect_ivl_ms / 1000)
            return
        except TimeoutError:
            pass
        pull = self._pull
        if pull is None or pull.closed:
            return
        endpoint = self._config.endpoint(self._config.request_port)
        with contextlib.suppress(zmq.ZMQError):
            pull.disconnect(endpoint)  # the dead session may still hold the endpoint
        try:
            pull.connect(endpoint)
        except zmq.ZMQError as exc:
            logger.error("cannot reconnect PULL to %s: %s", endpoint, exc)
            return
        logger.warning("PULL connection to %s was not retried by ZMQ; connected again", endpoint)

    # -- receiving -----------------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        assert self._pull is not None
        pull = self._pull
        while True:
            try:
                # One recv per frame: a multipart message is read as separate messages, like the
                # installation's own PULL does.
                frame = await pull.recv()
            except zmq.ZMQError as exc:
                if exc.errno == zmq.ETERM or pull.closed:
                    return
                logger.error("receive failed (%s); retrying", exc)
                await asyncio.sleep(0.1)
                continue
            self._stats.frames += 1
            try:
                await self._accept(frame)
            except FrameError as err:
                self._count(self._stats.drops, err.reason)
                logger.warning("dropped frame of %d bytes: %s", len(frame), err)
            except Exception:
                # The loop must outlive any bug in handling one frame.
                self._count(self._stats.drops, "internal_error")
                logger.exception("dropped frame of %d bytes: unexpected error", len(frame))

    async def _accept(self, frame: bytes) -> None:
        config = self._config
        decode_args = (frame, config.schema_variant)
        limits = {
            "max_bytes": config.max_frame_bytes,
            "max_size": config.max_size,
            "max_prompt_chars": config.max_prompt_chars,
        }
        if len(frame) > _INLINE_DECODE_BYTES:
            # Awaited before the next recv, so requests keep their order.
            request = await asyncio.to_thread(decode_frame, *decode_args, **limits)
        else:
            request = decode_frame(*decode_args, **limits)
        request_id = request.request_id
        if request_id in self._seen:
            raise FrameError("duplicate_id", request_id, "already received; the core never reuses an id")
        self._seen[request_id] = None
        while len(self._seen) > config.dedupe_window:
            self._seen.popitem(last=False)
        self._stats.requests += 1
        if request.clear_queue:
            self._clear_before(request_id)
        loop = asyncio.get_running_loop()
        now = loop.time()
        entry = _Entry(request, received=now, received_wall=time.time(), deadline=now + config.timeout_s)
        overloaded = len(self._order) >= config.max_pending
        entry.task = asyncio.create_task(self._answer(entry, overloaded), name=f"limner-bridge-{request_id[:40]}")
        self._order.append(entry)
        assert self._wake is not None  # set by start()
        self._wake.set()

    def _clear_before(self, request_id: str) -> None:
        """``clear_queue``: everything received before ``request_id`` and not yet answered is dropped."""
        dropped = list(self._order)
        self._order.clear()
        unfinished: list[str] = []
        for entry in dropped:
            entry.cancelled = True
            if entry.task is not None and not entry.task.done():
                entry.task.cancel()
                unfinished.append(entry.request.request_id)
        self._stats.cancelled += len(dropped)
        if dropped:
            logger.info("clear_queue in %s: dropped %d unanswered requests", request_id, len(dropped))
        if unfinished:
            self._tell_cancel(unfinished)

    def _tell_cancel(self, request_ids: list[str]) -> None:
        if self._cancel is None:
            return
        task = asyncio.create_task(self._call_cancel(request_ids), name="limner-bridge-cancel")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _call_cancel(self, request_ids: list[str]) -> None:
        assert self._cancel is not None
        try:
            await self._cancel(request_ids)
        except Exception:
            # The bridge has already dropped these requests; a failing cancel only wastes render time.
            logger.exception("cancel(%d ids) failed", len(request_ids))

    # -- answering -----------------------------------------------------------------------------------------

    async def _answer(self, entry: _Entry, overloaded: bool) -> _Reply | None:
        """Renders and writes the image, or a fallback; None only when not even a fallback can be written."""
        request_id = entry.request.request_id
        try:
            if overloaded:
                return await self._fallback(entry, "overloaded", f"more than {self._config.max_pending} pending")
            try:
                return await self._render_and_write(entry)
            except TimeoutError:
                if entry.started:
                    self._tell_cancel([request_id])
                return await self._fallback(entry, "timeout", f"no image within {self._config.timeout_s} s")
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # clear_queue or stop(): no reply
                # The render itself raised CancelledError (its job was cancelled elsewhere): still answer.
                return await self._fallback(entry, "error", "the render was cancelled")
            except Exception as exc:
                return await self._fallback(entry, "error", f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception:
            self._stats.unanswered += 1
            logger.exception("request %s cannot be answered at all", request_id)
            return None

    async def _render_and_write(self, entry: _Entry) -> _Reply:
        loop = asyncio.get_running_loop()
        request = entry.request
        assert self._slots is not None  # set by start()
        try:
            async with asyncio.timeout_at(entry.deadline):
                async with self._slots:
                    entry.started = True
                    started = loop.time()
                    self._stats.queue_seconds_total += started - entry.received
                    self._stats.in_flight += 1
                    try:
                        job = await self._build_job(entry)
                        result = await _detached(self._render(job))
                    finally:
                        self._stats.in_flight -= 1
                        self._stats.generation_count += 1
                        self._stats.generation_seconds_total += loop.time() - started
                data = await asyncio.to_thread(self._outputs.encode, result, request.size)
        except TimeoutError:
            if not entry.started:
                self._stats.queue_seconds_total += loop.time() - entry.received
            raise
        self._stats.renders_ok += 1
        era, biome = request_era_biome(request)
        path = await asyncio.to_thread(self._outputs.write, request.request_id, data, era=era, biome=biome)
        return _Reply(encode_image_ready(request, path), path, fallback=False)

    async def _build_job(self, entry: _Entry) -> BridgeJob:
        config = self._config
        request = entry.request
        era, biome = request_era_biome(request)
        depth = await self._load_conditioning(request.depth_map, request.request_id, "depth_map")
        reference = await self._load_conditioning(request.reference_image, request.request_id, "reference_image")
        init_kind: Literal["depth_map", "reference_image"] | None = None
        init_image: Image.Image | None = None
        strength: float | None = None
        if reference is not None:
            init_kind, init_image, strength = "reference_image", reference, config.reference_strength
        elif depth is not None:
            init_kind, init_image, strength = "depth_map", depth, config.depth_strength
        if init_image is not None and isinstance(request, FireRenderRequest) and request.strength is not None:
            strength = request.strength
        style = style_for(era, biome) if config.styles_enabled and era is not None and biome is not None else None
        width, height = request.size
        return BridgeJob(
            request_id=request.request_id,
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or "",
            width=width,
            height=height,
            seed=_seed_for(request),
            era=era,
            biome=biome,
            init_image=init_image,
            init_kind=init_kind,
            strength=strength,
            depth_map=depth,
            style=style,
            style_hint=request.style,
            generator=request.generator,
            received_at=entry.received_wall,
            deadline=entry.received_wall + config.timeout_s,
        )

    async def _load_conditioning(self, source: ImageSource | None, request_id: str, name: str) -> Image.Image | None:
        """The decoded image, or None; an unusable one is logged and left out (the request is still rendered)."""
        if source is None:
            return None
        config = self._config
        try:
            return await asyncio.to_thread(
                load_image_source,
                source,
                allowed_dirs=config.allowed_dirs,
                max_bytes=config.max_image_bytes,
                max_pixels=config.max_image_pixels,
                request_id=request_id,
                field=name,
            )
        except FrameError as err:
            self._count(self._stats.conditioning_errors, err.reason)
            logger.warning("%s ignored, rendering without it: %s", name, err)
            return None

    async def _fallback(self, entry: _Entry, cause: str, detail: str) -> _Reply:
        request = entry.request
        self._stats.fallbacks += 1
        self._count(self._stats.fallback_causes, cause)
        logger.warning("request %s: %s (%s); answering with a fallback image", request.request_id, cause, detail)
        era, biome = request_era_biome(request)
        assert self._fallback_slots is not None  # set by start()
        # Bounded apart from the render slots: an overload answers every request by fallback at once, and
        # each one decodes and re-encodes a full-size image.
        async with self._fallback_slots:
            path = await asyncio.to_thread(
                self._outputs.write_fallback, request.request_id, request.size, era=era, biome=biome
            )
        return _Reply(encode_image_ready(request, path), path, fallback=True)

    # -- retention -----------------------------------------------------------------------------------------

    async def _retention_loop(self) -> None:
        policy = self._config.retention
        while True:
            try:
                report = await asyncio.to_thread(self._outputs.prune, policy)
                self._stats.retention_removed += len(report.removed)
            except Exception:
                # A failing clean-up must not stop the bridge; the next round tries again.
                logger.exception("retention round failed")
            await asyncio.sleep(policy.interval_s)

    # -- sending -------------------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        assert self._wake is not None  # set by start()
        while True:
            if not self._order:
                self._wake.clear()
                await self._wake.wait()
                continue
            entry = self._order[0]
            task = entry.task
            assert task is not None  # set before the entry is queued
            if not task.done():
                # asyncio.wait does not raise when the task is cancelled by clear_queue.
                await asyncio.wait({task})
            if self._order and self._order[0] is entry:
                self._order.popleft()
            if entry.cancelled or task.cancelled():
                continue
            try:
                reply = task.result()
                if reply is not None:
                    await self._send(entry, reply)
            except Exception:
                self._stats.unanswered += 1
                logger.exception("request %s: reply not sent", entry.request.request_id)

    async def _send(self, entry: _Entry, reply: _Reply) -> None:
        assert self._push is not None
        try:
            await asyncio.wait_for(self._push.send(reply.frame), self._config.send_timeout_s)
        except (TimeoutError, zmq.ZMQError) as exc:
            self._stats.send_failures += 1
            logger.error("request %s: reply not sent (%s)", entry.request.request_id, exc or "timeout")
            return
        loop = asyncio.get_running_loop()
        self._stats.replies += 1
        self._stats.reply_seconds_total += loop.time() - entry.received
        self._last_reply_fallback = reply.fallback
        if self._config.latest_symlink:
            self._outputs.point_latest(reply.path)

    # -- health --------------------------------------------------------------------------------------------

    def _health_probe(self) -> HealthProbe:
        # Called from the health loop's own task, which is not done while it asks.
        alive = all(not task.done() for task in self._loops)
        return HealthProbe(alive=alive, last_reply_fallback=self._last_reply_fallback, stats=self.stats())

    @staticmethod
    def _count(counter: dict[str, int], key: str) -> None:
        counter[key] = counter.get(key, 0) + 1


# -- helpers (pure, run in worker threads) ---------------------------------------------------------------


async def _detached(render: Awaitable[RenderResult]) -> RenderResult:
    """Awaits ``render`` but lets go at once when cancelled, even if the render ignores its cancellation.

    A render that swallowed ``CancelledError`` would otherwise hold its reply, and every reply after it
    (replies go out in order), past the deadline.
    """
    task = asyncio.ensure_future(render)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        # Whatever the abandoned render ends with is nobody's business any more; do not log it as lost.
        task.add_done_callback(_discard_result)
        raise


def _discard_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _seed_for(request: RenderRequest) -> int:
    """The request's seed in the generator's range, or a stable one from its id (a rerun draws the same)."""
    if request.seed is not None:
        return request.seed % 2**63
    digest = hashlib.sha256(request.request_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 2**63
