"""The remote deployment: the paid APIs (GetImg.AI, FAL.AI, OpenAI, Runware) behind the generator's handle surface.

A thin host for :class:`serve_app.remote.stage.RemoteStage`. One deployment holds every configured backend: an
API call is a wait on the network, not compute, so one CPU replica (no reserved CPU) carries many in flight, and
each backend's own transport keeps its concurrency cap, rate limit and circuit breaker; a deployment per backend
would only add handles. It is in the graph only when ``remote`` configures a backend. Keys are read from the
replica's environment (``LIMNER_*``), never from the YAML; a missing one fails the constructor, naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ray import serve

from serve_app.config import RemoteConfig
from serve_app.remote.stage import RemoteStage
from serve_app.schemas import ComposedRequest

__all__ = ["Remote"]


@serve.deployment(name="Remote")
class Remote:
    """Every configured paid API.

    Args:
        config: The ``remote`` section of the app config.
    """

    def __init__(self, config: RemoteConfig) -> None:
        from serve_app.observability.logs import configure_logging_from_env

        configure_logging_from_env()  # LIMNER_LOG_FORMAT=json: JSON lines (docs/OBSERVABILITY.md)
        self._stage = RemoteStage(config)

    async def generate_batch_stream(
        self, family: Sequence[ComposedRequest], backend: str, every: float = 0.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Call with ``handle.options(stream=True)``: progress, then one image event per request."""
        async for event in self._stage.generate_batch_stream(family, backend, every):
            yield event

    async def ready(self) -> dict[str, Any]:
        return await self._stage.ready()

    async def stats(self) -> dict[str, Any]:
        return await self._stage.stats()
