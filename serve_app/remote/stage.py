"""The remote stage: the configured paid APIs behind the generator's handle surface.

One stage holds every configured backend (pipelines/remote/): each has its own transport (timeouts, retries,
rate limit, concurrency cap, circuit breaker), and waiting on an API costs no thread, so one CPU replica carries
them all; the Remote deployment (deployments/remote.py) hosts it, and the edge without Ray uses it directly.
Like the generator it streams ``{"type": "progress", "step", "total"}`` then ``{"type": "image", "image"}``, and
closing the stream early cancels the call (FAL cancels upstream, the others stop waiting).

Keys come from the environment only (``LIMNER_<NAME>_...``, the backend's ``key_env``), are never logged, and a
configured backend without its key refuses to start, naming the variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipelines import encode
from pipelines.errors import InputError
from serve_app.schemas import ComposedRequest, GeneratedImage

if TYPE_CHECKING:
    from pipelines.remote.base import RemoteBackend
    from pipelines.request import GenerationResult
    from serve_app.config import RemoteBackendConfig, RemoteConfig

__all__ = ["MissingKey", "RemoteStage", "build_backend", "missing_keys", "require_keys"]

logger = logging.getLogger("ray.serve.limner.remote")

_CANCEL_GRACE_S = 5.0
"""How long a cancelled call may take to tell its API (FAL's cancel) before it is dropped."""


class MissingKey(RuntimeError):
    """A configured backend whose key variable is unset."""


def missing_keys(config: RemoteConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """The key variables of configured backends that are unset or empty."""
    from pipelines.remote import backend_class

    environ = os.environ if environ is None else environ
    return [env for name in config.configured if not environ.get(env := backend_class(name).key_env)]


def require_keys(config: RemoteConfig, environ: Mapping[str, str] | None = None) -> None:
    """Raises :class:`MissingKey` naming every configured backend's unset key variable."""
    missing = missing_keys(config, environ)
    if missing:
        raise MissingKey(f"remote backends are configured without their keys: set {', '.join(missing)}")


def build_backend(name: str, entry: RemoteBackendConfig, key: str, **extra: Any) -> RemoteBackend:
    """One backend from its config entry (``key`` "" builds a check-only instance: nothing is sent until asked)."""
    from pipelines.remote import backend_class
    from pipelines.remote.transport import TransportPolicy

    policy = TransportPolicy(
        timeout_s=entry.timeout_s,
        max_retries=entry.max_retries,
        rate_per_s=entry.rate_per_s,
        max_concurrent=entry.max_concurrent,
        breaker_failures=entry.breaker_failures,
        breaker_reset_s=entry.breaker_reset_s,
    )
    cls = backend_class(name)
    return cls.create(
        key, base_url=entry.base_url, model=entry.model, price_usd=entry.price_usd, policy=policy, **extra
    )


class RemoteStage:
    """Every configured backend, streaming like the generator.

    Args:
        config: The ``remote`` section.
        environ: Where the keys are read (the process environment by default).

    Raises:
        MissingKey: A configured backend's key variable is unset (the message names it).
    """

    def __init__(self, config: RemoteConfig, environ: Mapping[str, str] | None = None) -> None:
        from pipelines.remote import backend_class

        environ = os.environ if environ is None else environ
        require_keys(config, environ)
        self._backends: dict[str, RemoteBackend] = {
            name: build_backend(name, entry, environ[backend_class(name).key_env])
            for name, entry in config.configured.items()
        }
        self._images: dict[str, int] = dict.fromkeys(self._backends, 0)

    def backend(self, name: str) -> RemoteBackend:
        """The backend called ``name``.

        Raises:
            InputError: It is not configured here.
        """
        try:
            return self._backends[name]
        except KeyError:
            raise InputError("backend", name, f"one of {sorted(self._backends)} (configured)") from None

    async def generate_stream(
        self, composed: ComposedRequest, backend: str, every: float = 0.0
    ) -> AsyncIterator[dict[str, Any]]:
        """One request on ``backend``: its progress, then ``{"type": "image", "image": GeneratedImage}``."""
        async for event in self.generate_batch_stream([composed], backend, every):
            if event["type"] == "image":
                yield {"type": "image", "image": event["image"]}
            else:
                yield event

    async def generate_batch_stream(
        self, family: Sequence[ComposedRequest], backend: str, every: float = 0.0
    ) -> AsyncIterator[dict[str, Any]]:
        """A family on ``backend`` (split into API calls as the API allows): progress, then one image event
        ``{"type": "image", "index", "image"}`` per request."""
        remote = self.backend(backend)
        requests = [c.request for c in family]
        remote.check_batch(requests)
        queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        wanted = True
        last = 0.0

        def on_step(step: int, total: int) -> bool:
            queue.put_nowait((step, total))
            return wanted

        started = time.perf_counter()
        task = asyncio.ensure_future(remote.generate(requests, on_step))
        try:
            while not task.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    continue
                step, total = getter.result()
                now = time.monotonic()
                if 0 < step < total and now - last >= every:
                    last = now
                    yield {"type": "progress", "step": step, "total": total}
            result: GenerationResult = task.result()
        finally:
            if not task.done():  # the caller went away: the next on_step cancels upstream, then stop waiting
                wanted = False
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(task), _CANCEL_GRACE_S)
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        elapsed = time.perf_counter() - started
        costs = result.costs_usd or [None] * len(family)
        # Encoded in a worker thread (Pillow releases the GIL): on the event loop it would stall every other
        # call in flight. Raw (intermediate) images are handed over as they are.
        pngs = await asyncio.gather(
            *(
                _no_png() if c.raw else asyncio.to_thread(encode.encode, image, "png", fast=True)
                for c, image in zip(family, result.images, strict=True)
            )
        )
        self._images[backend] += len(family)
        for index, (composed, image, seed, cost, png) in enumerate(
            zip(family, result.images, result.seeds, costs, pngs, strict=True)
        ):
            raw = composed.raw
            yield {
                "type": "image",
                "index": index,
                "image": GeneratedImage(
                    png=png,
                    pixels=image if raw else None,
                    seed=int(seed),
                    width=image.width,
                    height=image.height,
                    request_hash=composed.request_hash,
                    batch_size=len(family),
                    timings={"generate_s": elapsed, "queue_s": 0.0},
                    cost_usd=cost,
                    backend=backend,
                ),
            }

    async def ready(self) -> dict[str, Any]:
        """Each backend's circuit state: a backend whose circuit is open is not worth routing to now."""
        return {name: {"breaker": b.transport.breaker.state} for name, b in self._backends.items()}

    async def stats(self) -> dict[str, Any]:
        """Per backend: images made and its transport's counters (calls, retries, failures, in flight)."""
        return {name: {"images": self._images[name], **b.transport.stats()} for name, b in self._backends.items()}

    async def aclose(self) -> None:
        for backend in self._backends.values():
            with contextlib.suppress(Exception):
                await backend.aclose()


async def _no_png() -> bytes:
    return b""
