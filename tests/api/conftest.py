"""The HTTP layer in-process: real routes, real services (SQLite, a local asset folder, in-process cache and
events), the real dispatcher, and the real composer and generator classes on the tiny model. No Ray."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.composer import Composer
from deployments.generator import Generator
from deployments.ingress import is_transient
from serve_app.api.app import create_api
from serve_app.api.service import ImageService
from serve_app.config import AppConfig, ComposerConfig, GeneratorConfig, JobsConfig, Settings
from serve_app.images import ImageRepository
from serve_app.jobs.dispatcher import Dispatcher
from serve_app.jobs.generate import GenerateJobs
from serve_app.schemas import ComposedRequest
from serve_app.services import Services, open_services


class Local:
    """What the ingress builds, over plain objects instead of deployment handles."""

    def __init__(self, model_cache: Path, data_dir: Path, jobs: JobsConfig) -> None:
        self.composer = Composer.func_or_class(ComposerConfig(width=64, height=64, steps=3), "tiny")
        self.generator = Generator.func_or_class(
            GeneratorConfig(model_name="tiny", warmup_sizes=[]), "tiny", str(model_cache)
        )
        self.settings = Settings(data_dir=str(data_dir))
        self.jobs_config = jobs
        self.ready = True
        self.failures: dict[str, int] = {}  # prompt → how many more attempts fail as if a replica died
        self.services: Services
        self.dispatcher: Dispatcher
        self.service: ImageService

    async def stream(self, composed: ComposedRequest) -> AsyncIterator[dict[str, Any]]:
        left = self.failures.get(composed.request.prompt, 0)
        if left:
            self.failures[composed.request.prompt] = left - 1
            raise RuntimeError("replica died")
        async for item in self.generator.generate_stream(composed, self.services.jobs.progress_interval_s):
            yield item

    async def readiness(self) -> dict[str, Any] | None:
        return await self.generator.ready() if self.ready else None  # type: ignore[no-any-return]

    async def open(self) -> None:
        self.services = await open_services(AppConfig(jobs=self.jobs_config), self.settings)
        handler = GenerateJobs(
            self.stream,
            ImageRepository(self.services.engine),
            self.services.store,
            self.services.results,
        )
        self.dispatcher = Dispatcher(
            self.services.jobs,
            handler,
            is_transient=is_transient,
            lease_s=self.jobs_config.lease_s,
            heartbeat_s=self.jobs_config.heartbeat_s,
            poll_interval_s=0.05,
            max_concurrent=self.jobs_config.max_concurrent,
        )
        self.dispatcher.start()
        self.service = ImageService(
            self.services,
            self.dispatcher,
            self.composer.compose,
            self.readiness,
            self.generator.stats,
            self.jobs_config,
        )

    async def close(self) -> None:
        await self.dispatcher.stop()
        await self.services.aclose()


@pytest.fixture(scope="module")
def local(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Local:
    jobs = JobsConfig(lease_s=10, heartbeat_s=1, max_queued=50, max_concurrent=8, backoff_base_s=0.1)
    return Local(model_cache, tmp_path_factory.mktemp("data"), jobs)


@pytest.fixture
def client(local: Local) -> Iterator[TestClient]:
    local.ready = True
    with TestClient(create_api_lazily(local)) as c:
        yield c


def create_api_lazily(local: Local) -> Any:
    """The app, with the services opened on the test client's event loop (startup) and closed after."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await local.open()
        app.state.service = local.service
        yield
        await local.close()

    app = create_api(None)  # type: ignore[arg-type]
    app.router.lifespan_context = lifespan
    return app


__all__ = ["Local", "asyncio"]
