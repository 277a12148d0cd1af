"""Cancelling a job stops the generator's work, also for a seeded job inside the result cache's shared
computation, while a second identical job that still waits keeps that computation going.

The evidence is the real tiny generator's step counters (``/api/v2/admin/generator/stats``), not the job's
status: a job is marked cancelled at once whether or not the generation behind it stopped. The generation is
held at a gate after its second step, so what the test does meanwhile happens mid-run on any machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.generator import Generator
from serve_app.config import GeneratorConfig, JobsConfig
from tests.api.conftest import Local, create_api_lazily
from tests.deployments.gated import GatedPipeline

JOBS = "/api/v2/images/jobs"
STATS = "/api/v2/admin/generator/stats"


class GatedLocal(Local):
    """The in-process edge, with the real generator class over a gated tiny pipeline."""

    def __init__(self, model_cache: Path, data_dir: Path, jobs: JobsConfig) -> None:
        super().__init__(model_cache, data_dir, jobs)
        self.gated = GatedPipeline(self.generator._pipeline, hold_at=2)
        self.generator = Generator.func_or_class(
            GeneratorConfig(model_name="tiny", warmup_sizes=[]),
            "tiny",
            str(model_cache),
            pipeline_factory=lambda *_: self.gated,
        )


@pytest.fixture(scope="module")
def local(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> GatedLocal:
    jobs = JobsConfig(lease_s=10, heartbeat_s=1, max_queued=50, max_concurrent=8, backoff_base_s=0.1)
    return GatedLocal(model_cache, tmp_path_factory.mktemp("data"), jobs)


@pytest.fixture
def client(local: GatedLocal) -> Iterator[TestClient]:
    with TestClient(create_api_lazily(local)) as c:
        yield c
    local.gated.open()


def _until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _status(client: TestClient, job_id: str) -> str:
    return str(client.get(f"{JOBS}/{job_id}").json()["status"])


def _steps(client: TestClient) -> tuple[int, int]:
    stats = client.get(STATS).json()
    return stats["steps"], stats["wasted_steps"]


def test_cancelling_a_running_seeded_job_stops_its_generation(client: TestClient, local: GatedLocal) -> None:
    local.gated.close()
    steps_before, wasted_before = _steps(client)
    job = client.post(JOBS, json={"prompt": "a cancelled tower", "seed": 11, "steps": 100}).json()
    assert local.gated.reached.wait(60), "the generation never reached its second step"
    assert client.delete(f"{JOBS}/{job['id']}").status_code == 200
    _until(lambda: _status(client, job["id"]) == "cancelled", "the job to be cancelled")
    local.gated.open()
    assert local.gated.finished.wait(120)
    steps, wasted = _steps(client)
    # Step 1, then step 2, during which the job was cancelled: nothing of the other 98 steps ran.
    assert (steps - steps_before, wasted - wasted_before) == (2, 1)


def test_a_shared_computation_keeps_going_for_the_job_that_still_waits(client: TestClient, local: GatedLocal) -> None:
    local.gated.close()
    results = local.edge.services.results
    steps_before, wasted_before = _steps(client)
    body = {"prompt": "a shared bridge", "seed": 12, "steps": 20}
    first = client.post(JOBS, json=body).json()
    assert local.gated.reached.wait(60), "the generation never reached its second step"
    second = client.post(JOBS, json=body).json()
    request_hash = first["request_hash"]
    assert second["request_hash"] == request_hash
    _until(lambda: results.waiting(request_hash) == 2, "the second job to join the first one's generation")

    client.delete(f"{JOBS}/{first['id']}")
    _until(lambda: _status(client, first["id"]) == "cancelled", "the first job to be cancelled")
    assert results.waiting(request_hash) == 1
    local.gated.open()
    _until(lambda: _status(client, second["id"]) == "succeeded", "the second job to succeed")
    done = client.get(f"{JOBS}/{second['id']}").json()
    assert client.get(done["links"]["image"]).json()["seed"] == 12
    assert local.gated.finished.wait(120)
    steps, wasted = _steps(client)
    # One generation of all 20 steps, every one of them wanted by the second job.
    assert (steps - steps_before, wasted - wasted_before) == (20, 0)
    assert _status(client, first["id"]) == "cancelled"
