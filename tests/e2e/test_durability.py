"""Nothing accepted is lost: a killed service or generator replica ends every job exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from PIL import Image
from sqlalchemy import func, select

from serve_app.db import Image as ImageRow
from serve_app.db import JobEvent, make_engine
from tests.e2e.conftest import Service, serve_config, start_service
from tests.services import _create_database, _drop_database, postgres_server_url  # noqa: F401

pytestmark = pytest.mark.serve

JOBS = "/api/v2/images/jobs"


def _submit(url: str, n: int, steps: int, tag: str) -> list[str]:
    with httpx.Client(base_url=url, timeout=30) as client:
        ids = []
        for i in range(n):
            body = {"prompt": f"{tag} {i}", "width": 64, "height": 64, "steps": steps, "seed": i}
            r = client.post(JOBS, json=body)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        return ids


def _jobs(url: str, ids: list[str]) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=30) as client:
        return [client.get(f"{JOBS}/{i}").json() for i in ids]


def _wait_all(url: str, ids: list[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = _jobs(url, ids)
        if all(j["status"] in ("succeeded", "failed", "dead", "cancelled") for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            pytest.fail(f"jobs still unfinished: {[j['status'] for j in jobs]}")
        time.sleep(0.5)


def _wait_running(url: str, ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(j["status"] == "running" and (j["step"] or 0) > 0 for j in _jobs(url, ids)):
            return
        time.sleep(0.1)
    pytest.fail("no job started")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'limner.db'}"
        return
    server = request.getfixturevalue("postgres_server_url")
    url = _create_database(server)
    try:
        yield url
    finally:
        _drop_database(server, url)


async def _referenced(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return {h for (h,) in await conn.execute(select(ImageRow.content_hash))}
    finally:
        await engine.dispose()


async def _db_counts(url: str) -> tuple[dict[str, int], int, int]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(JobEvent.job_id, func.count()).where(JobEvent.type == "succeeded").group_by(JobEvent.job_id)
            )
            succeeded = {str(job_id): n for job_id, n in rows}
            images = (await conn.execute(select(func.count()).select_from(ImageRow))).scalar_one()
            hashes = (await conn.execute(select(func.count(func.distinct(ImageRow.content_hash))))).scalar_one()
    finally:
        await engine.dispose()
    return succeeded, images, hashes


def test_sigkill_of_the_whole_service_loses_nothing(tmp_path: Path, database_url: str, model_cache: Path) -> None:
    data = tmp_path / "data"
    env = {"LIMNER_MODEL_CACHE": str(model_cache), "LIMNER_DATA_DIR": str(data), "LIMNER_DATABASE_URL": database_url}
    config = serve_config(warm=False, max_queued=100)
    first = start_service(tmp_path / "first", env, config)
    try:
        ids = _submit(first.url, 30, steps=12, tag="crash")
        _wait_running(first.url, ids)
    finally:
        first.process.kill()  # every process of the tree, mid-batch, no shutdown

    second = start_service(tmp_path / "second", env, config)
    try:
        jobs = _wait_all(second.url, ids, timeout=240)
    finally:
        second.process.stop()
    assert [j["status"] for j in jobs] == ["succeeded"] * 30
    succeeded, images, hashes = asyncio.run(_db_counts(database_url))
    assert succeeded == {j["id"]: 1 for j in jobs}  # each job succeeded exactly once
    assert images == hashes == 30  # one image row per image, none duplicated
    blobs = {p.stem: p for p in (data / "assets").rglob("*.png") if not p.name.startswith(".")}
    for blob in blobs.values():  # every visible blob is whole: its name is the hash of its bytes, and it decodes
        content = blob.read_bytes()
        assert hashlib.sha256(content).hexdigest() == blob.stem
        Image.open(io.BytesIO(content)).verify()
    referenced = asyncio.run(_referenced(database_url))
    assert len(referenced) == 30 and referenced <= blobs.keys()  # every image row has its bytes
    # A kill between a job's blob write and its row commit leaves an unreferenced blob (the retry's pixels
    # may differ by a grey level in another batch, so it is not always the same blob): collecting is gc's job.
    # A kill in the middle of a blob write leaves its temporary file (a hidden name): gc removes those too.
    temporary = [p for p in (data / "assets").rglob(".*") if p.is_file()]
    report = subprocess.run(
        [sys.executable, "-m", "serve_app.cli", "gc", "--older-than", "0"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(report.stdout.splitlines()[-1])["removed"] == len(blobs) - 30 + len(temporary)
    left = {p.stem for p in (data / "assets").rglob("*.png") if not p.name.startswith(".")}
    assert left == referenced


def _generator_pids(service: Service) -> list[int]:
    """The Generator replica processes of this service (not of any other Ray instance on the machine)."""
    assert service.process.proc is not None
    pids = []
    for proc in psutil.Process(service.process.proc.pid).children(recursive=True):
        try:
            if "ServeReplica:limner:Generator" in " ".join(proc.cmdline()):
                pids.append(proc.pid)
        except psutil.Error:
            pass
    return pids


def test_a_generator_replica_killed_mid_batch_is_retried(service: Service) -> None:
    ids = _submit(service.url, 6, steps=40, tag="replica")
    _wait_running(service.url, ids)
    pids = _generator_pids(service)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    jobs = _wait_all(service.url, ids, timeout=180)
    assert [j["status"] for j in jobs] == ["succeeded"] * 6
    assert max(j["attempts"] for j in jobs) >= 2  # the batch that died ran again
    assert _generator_pids(service) and _generator_pids(service) != pids  # Serve replaced the replica


async def _job_rows(url: str) -> dict[str, tuple[str, int, int]]:
    """``{job id: (status, attempts, released events)}`` read straight from the database."""
    from serve_app.db import Job

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            released = dict(
                (str(j), n)
                for j, n in await conn.execute(
                    select(JobEvent.job_id, func.count()).where(JobEvent.type == "released").group_by(JobEvent.job_id)
                )
            )
            rows = await conn.execute(select(Job.id, Job.status, Job.attempts))
            return {str(i): (str(s), a, released.get(str(i), 0)) for i, s, a in rows}
    finally:
        await engine.dispose()


def test_a_graceful_shutdown_hands_running_jobs_back_without_using_an_attempt(
    tmp_path: Path, model_cache: Path
) -> None:
    """SIGINT to ``serve run`` (a graceful Serve shutdown, as on a redeploy): the ingress stops claiming and
    hands its running jobs back to the queue at once, attempts not counted. With ``max_attempts: 1`` a job
    whose attempt a restart used up would end ``dead`` after the restart instead of ``succeeded``."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'limner.db'}"
    env = {
        "LIMNER_MODEL_CACHE": str(model_cache),
        "LIMNER_DATA_DIR": str(tmp_path / "data"),
        "LIMNER_DATABASE_URL": database_url,
    }
    config = serve_config(warm=False, max_queued=100, max_attempts=1, lease_s=600)
    first = start_service(tmp_path / "first", env, config)
    try:
        ids = _submit(first.url, 12, steps=60, tag="drain")
        _wait_running(first.url, ids)
        assert first.process.proc is not None
        first.process.proc.send_signal(signal.SIGINT)  # serve run's own graceful shutdown, not a kill
        first.process.proc.wait(timeout=120)
    finally:
        first.process.stop()
    rows = asyncio.run(_job_rows(database_url))
    assert not [i for i, (status, _, _) in rows.items() if status == "running"]  # nothing left to a lease
    handed_back = [i for i, (status, attempts, released) in rows.items() if released]
    assert handed_back and all(rows[i][:2] == ("queued", 0) for i in handed_back)

    second = start_service(tmp_path / "second", env, config)
    try:
        jobs = _wait_all(second.url, ids, timeout=300)
    finally:
        second.process.stop()
    assert [j["status"] for j in jobs] == ["succeeded"] * 12
    assert all(attempts == 1 for _, attempts, _ in asyncio.run(_job_rows(database_url)).values())


def test_a_webhook_owed_when_the_service_is_killed_is_delivered_after_the_restart(
    tmp_path: Path, model_cache: Path
) -> None:
    """The job ends while its receiver answers 503; the whole service is SIGKILLed with the delivery still owed; the
    restarted service delivers it once the receiver answers 200: the same message (one ``webhook-id``) throughout."""
    import base64

    from tests.webhook_receiver import Receiver

    secret = "whsec_" + base64.b64encode(b"e2e-webhook-secret-of-32-bytes!!").decode()
    env = {
        "LIMNER_MODEL_CACHE": str(model_cache),
        "LIMNER_DATA_DIR": str(tmp_path / "data"),
        "LIMNER_WEBHOOK_SECRET": secret,
    }
    config = serve_config(warm=False)
    config["applications"][0]["args"]["webhooks"] = {
        "allow_hosts": ["127.0.0.1"],
        "backoff_base_s": 0.2,
        "backoff_cap_s": 0.5,
        "poll_s": 0.1,
        "max_attempts": 100,
    }
    with Receiver([503]) as receiver:
        first = start_service(tmp_path / "first", env, config)
        try:
            body = {"prompt": "a lantern owed a webhook", "width": 64, "height": 64, "steps": 2, "seed": 9}
            r = httpx.post(
                f"{first.url}/api/v2/images/jobs", params={"webhook_url": receiver.url}, json=body, timeout=30
            )
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            [job] = _wait_all(first.url, [job_id], timeout=120)
            assert job["status"] == "succeeded"
            deadline = time.monotonic() + 60
            while len(receiver.received) < 2 and time.monotonic() < deadline:  # tried, refused, owed
                time.sleep(0.1)
            assert len(receiver.received) >= 2, "the first service never tried the delivery"
        finally:
            first.process.kill()  # every process of the tree, no shutdown: the delivery is still owed
        refused = len(receiver.received)
        receiver.answer(200)
        second = start_service(tmp_path / "second", env, config)
        try:
            deadline = time.monotonic() + 60
            while not any(got.status == 200 for got in receiver.received) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # time for a second, wrong, delivery to show up
        finally:
            second.process.stop()
    received = receiver.received
    assert [got.status for got in received[:refused]] == [503] * refused
    assert [got.status for got in received[refused:]] == [200]  # delivered once the receiver took it
    assert len({got.headers["webhook-id"] for got in received}) == 1  # one message, the same id on every try
    assert received[-1].json["data"]["id"] == job_id and received[-1].json["type"] == "job.succeeded"
