"""The HTTP layer in-process: real routes, real services (SQLite, a local asset folder, in-process cache and
events), the edge built by the same :func:`serve_app.runtime.build_edge` the ingress uses, and the real
composer and generator classes on the tiny model. No Ray."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from deployments.composer import Composer
from deployments.generator import Generator
from serve_app.api.app import create_api
from serve_app.auth.keys import SqlKeyStore
from serve_app.config import (
    AppConfig,
    AuthConfig,
    ComposerConfig,
    EnhancerConfig,
    GeneratorConfig,
    IngressConfig,
    JobsConfig,
    MapsConfig,
    QuotaConfig,
    RemoteConfig,
    Settings,
    WebhooksConfig,
)
from serve_app.jobs.kinds import JobKind, default_kinds
from serve_app.runtime import Edge, Handles, build_edge
from serve_app.schemas import ComposedRequest
from serve_app.services import open_services


class Local:
    """What the ingress builds, over plain objects instead of deployment handles.

    A job whose prompt is in :attr:`held` stops after its first denoising step until :meth:`release`, so a
    test can count on it still running however slow the machine is.
    """

    def __init__(self, model_cache: Path, data_dir: Path, jobs: JobsConfig) -> None:
        self.model_cache = model_cache
        self.composer = Composer.func_or_class(ComposerConfig(width=64, height=64, steps=3), "tiny")
        self.generator = Generator.func_or_class(
            GeneratorConfig(model_name="tiny", warmup_sizes=[]), "tiny", str(model_cache)
        )
        self.settings = Settings(data_dir=str(data_dir))
        self.jobs_config = jobs
        self.ready = True
        self.failures: dict[str, int] = {}  # prompt → how many more attempts fail as if a replica died
        self.held: set[str] = set()
        self.kinds: list[JobKind] = default_kinds()
        self.routers: list[APIRouter] = []
        self.batches: list[int] = []  # the size of every family handed to the generator at once
        self.remote: RemoteConfig | None = None  # the paid APIs (tests point them at tests/remote_fakes)
        self.webhook_secret: str | None = None  # webhooks on (to 127.0.0.1) when set
        self.cors_origins: list[str] = []  # browser origins allowed (none: no CORS headers)
        self.poll_interval_s = 0.05  # the dispatcher's claim poll
        self.auth: AuthConfig | None = None  # the auth section (None: the default, off on this loopback edge)

        self.edge: Edge
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def stream(self, composed: ComposedRequest) -> AsyncIterator[dict[str, Any]]:
        prompt = composed.request.prompt
        left = self.failures.get(prompt, 0)
        if left:
            self.failures[prompt] = left - 1
            raise RuntimeError("replica died")
        async for item in self.generator.generate_stream(composed, self.edge.services.jobs.progress_interval_s):
            yield item
            if prompt in self.held and item["type"] == "progress" and self._gate is not None:
                await self._gate.wait()

    async def stream_batch(self, composeds: Sequence[ComposedRequest]) -> AsyncIterator[dict[str, Any]]:
        self.batches.append(len(composeds))
        interval = self.edge.services.jobs.progress_interval_s
        async for item in self.generator.generate_batch_stream(composeds, interval):
            yield item

    def hold(self, prompts: Iterable[str]) -> None:
        """Jobs with these prompts stay running after their first step until :meth:`release` (callable from the
        test's thread: the gate an earlier release opened is closed again first, on the app's loop)."""
        self.held |= set(prompts)
        if self._loop is not None and self._gate is not None and not self._loop.is_closed():
            if self._gate.is_set():
                self._loop.call_soon_threadsafe(self._gate.clear)

    def release(self) -> None:
        """Lets every held job go on (callable from the test's thread)."""
        self.held.clear()
        if self._loop is not None and self._gate is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._gate.set)

    async def readiness(self) -> dict[str, Any] | None:
        return await self.generator.ready() if self.ready else None  # type: ignore[no-any-return]

    def app_config(self) -> AppConfig:
        """The app config :meth:`open` builds the edge with (subclasses change it)."""
        # Tactical maps generate their background at about 128 x 96 here, and repaints (hires tiles, faces) run
        # at 64 x 64: the tiny model, fast on CPU.
        return AppConfig(
            jobs=self.jobs_config,
            maps=MapsConfig(base_pixels=128 * 96),
            enhancer=EnhancerConfig(native_size=64, max_pixels=1024 * 1024),
            remote=self.remote or RemoteConfig(),
            ingress=IngressConfig(cors_origins=self.cors_origins),
            auth=self.auth or AuthConfig(),
            webhooks=WebhooksConfig(allow_hosts=["127.0.0.1"], backoff_base_s=0.05, backoff_cap_s=0.1, poll_s=0.05),
        )

    async def open(self) -> None:
        self._loop, self._gate = asyncio.get_running_loop(), asyncio.Event()
        config = self.app_config()
        services = await open_services(config, self.settings)
        handles = Handles(
            compose=self.composer.compose,
            stream=self.stream,
            stream_batch=self.stream_batch,
            readiness=self.readiness,
            generator_stats=self.generator.stats,
        )
        self.edge = build_edge(
            config,
            services,
            handles,
            kinds=self.kinds,
            poll_interval_s=self.poll_interval_s,
            model_cache=str(self.model_cache),
            webhook_secret=self.webhook_secret,
        )
        await self.edge.start()

    async def close(self) -> None:
        self.release()
        await self.edge.aclose()


@pytest.fixture(scope="module")
def local(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Local:
    jobs = JobsConfig(lease_s=10, heartbeat_s=1, max_queued=50, max_concurrent=8, backoff_base_s=0.1)
    return Local(model_cache, tmp_path_factory.mktemp("data"), jobs)


@pytest.fixture
def client(local: Local, tmp_path: Path) -> Iterator[TestClient]:
    """A test's own database and asset folder (about 0.1 s to migrate): no job an earlier test left queued
    runs in this one, and nothing an earlier test's shutdown left behind can hold this one's database."""
    local.ready = True
    local.settings = Settings(data_dir=str(tmp_path / "data"))
    with TestClient(create_api_lazily(local)) as c:
        yield c


class Keys:
    """Makes keys in the test app's database, on the app's own event loop."""

    def __init__(self, local: Local, portal: Any) -> None:
        self._local = local
        self._portal = portal

    def make(self, scopes: list[str], **kwargs: Any) -> tuple[str, Any]:
        store = SqlKeyStore(self._local.edge.services.engine)
        return self._portal.call(lambda: store.create(f"test-{uuid.uuid4().hex[:6]}", scopes, **kwargs))

    def revoke(self, key_id: uuid.UUID) -> None:
        store = SqlKeyStore(self._local.edge.services.engine)
        self._portal.call(lambda: store.revoke(key_id))


@pytest.fixture
def keyed(local: Local, tmp_path: Path) -> Iterator[tuple[TestClient, Keys]]:
    local.ready = True
    local.settings = Settings(data_dir=str(tmp_path / "data"))
    local.auth = AuthConfig(mode="keys", limits=QuotaConfig(read_per_min=None, generate_per_min=None))
    try:
        with TestClient(create_api_lazily(local)) as client:
            assert client.portal is not None
            yield client, Keys(local, client.portal)
    finally:
        local.auth = None


def create_api_lazily(local: Local) -> Any:
    """The app, with the services opened on the test client's event loop (startup) and closed after."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await local.open()
        app.state.edge = local.edge
        yield
        await local.close()

    app = create_api(None)
    for router in local.routers:
        app.include_router(router)
    app.router.lifespan_context = lifespan
    return app


__all__ = ["Keys", "Local", "asyncio"]
