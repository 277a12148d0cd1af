"""Webhooks: the Standard Webhooks signature (the spec's own test vector, and a reference HMAC written here), the
targets refused, the outbox row committed with the job's end, and deliveries to a real local HTTP server: a retry
after a 500 keeps its webhook-id, a receiver that never answers 2xx is given up after max_attempts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.errors import InvalidRequest
from serve_app.jobs import Backoff, SqlJobStore
from serve_app.webhooks import WebhookDeliverer, WebhookOutbox, check_target, sign
from tests.webhook_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def _reference_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The spec's algorithm, written out: HMAC-SHA256 keyed by the base64-decoded secret over id.timestamp.body."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_the_signature_matches_the_specs_test_vector_and_a_reference_hmac() -> None:
    # standard-webhooks/standard-webhooks, spec test vector.
    vector = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert vector == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    body = b'{"type":"job.succeeded"}'
    assert sign(SECRET, "abc", 1700000000, body) == _reference_signature(SECRET, "abc", "1700000000", body)
    assert sign(SECRET, "abc", 1700000001, body) != sign(SECRET, "abc", 1700000000, body)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",  # the cloud metadata service
        "http://100.64.0.1/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://93.184.216.34/hook",
        "http://user:pass@93.184.216.34/hook",
        "/relative/hook",
    ],
)
async def test_inner_and_malformed_targets_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await check_target(url)
    assert refused.value.param == "webhook_url" and refused.value.status_code == 422


async def test_a_public_address_passes_and_an_allowed_host_passes_whatever_it_is() -> None:
    assert await check_target("https://93.184.216.34/hook") == "https://93.184.216.34/hook"
    assert await check_target("http://127.0.0.1:8080/hook", allowed_hosts=("127.0.0.1",))


async def test_the_outbox_row_commits_with_the_jobs_end(engine: AsyncEngine) -> None:
    store = SqlJobStore(engine)
    outbox = WebhookOutbox(engine)
    ok = await store.submit("image", {"n": 1}, webhook_url="http://hooks.example/ok")
    bad = await store.submit("image", {"n": 2}, webhook_url="http://hooks.example/bad")
    gone = await store.submit("image", {"n": 3}, webhook_url="http://hooks.example/gone")
    quiet = await store.submit("image", {"n": 4})
    await store.claim("d1", lease_s=30, limit=2)
    assert await outbox.for_job(ok.id) == []  # nothing before the end
    await store.complete(ok.id, "d1")
    await store.fail(bad.id, "d1", "bad prompt", transient=False, error_type="invalid_request", param="prompt")
    await store.cancel(gone.id)
    [done] = await outbox.for_job(ok.id)
    assert (done.event, done.url, done.status, done.attempts) == (
        "job.succeeded",
        "http://hooks.example/ok",
        "pending",
        0,
    )
    assert [d.event for d in await outbox.for_job(bad.id)] == ["job.failed"]
    assert [d.event for d in await outbox.for_job(gone.id)] == ["job.cancelled"]
    assert await outbox.for_job(quiet.id) == []
    due = await outbox.take_due(10, lease_s=60)
    assert {d.job_id for d in due} == {ok.id, bad.id, gone.id}
    assert await outbox.take_due(10, lease_s=60) == []  # taken: not handed out again until the lease runs out


async def test_on_start_a_delivery_commits_with_each_attempts_start(engine: AsyncEngine, clock: Any) -> None:
    store = SqlJobStore(engine, clock=clock)
    outbox = WebhookOutbox(engine)
    told = await store.submit("image", {"n": 1}, webhook_url="http://hooks.example/s", webhook_on_start=True)
    plain = await store.submit("image", {"n": 2}, webhook_url="http://hooks.example/p")
    flag_alone = await store.submit("image", {"n": 3}, webhook_on_start=True)  # no URL: nothing to tell
    assert await outbox.for_job(told.id) == []  # queued: not started yet
    await store.claim("d1", lease_s=30, limit=3)
    assert [d.event for d in await outbox.for_job(told.id)] == ["job.started"]
    assert await outbox.for_job(plain.id) == [] and await outbox.for_job(flag_alone.id) == []
    await store.fail(told.id, "d1", "replica died", transient=True)  # back to the queue
    await store.complete(plain.id, "d1")
    await store.complete(flag_alone.id, "d1")
    clock.advance(3600)  # past any backoff
    [again] = await store.claim("d1", lease_s=30, limit=3)
    assert again.id == told.id and again.attempts == 2
    await store.complete(told.id, "d1")
    assert [d.event for d in await outbox.for_job(told.id)] == ["job.started", "job.started", "job.succeeded"]
    assert [d.event for d in await outbox.for_job(plain.id)] == ["job.succeeded"]  # the end only, as before


def _deliverer(engine: AsyncEngine, store: SqlJobStore, **kw: Any) -> WebhookDeliverer:
    return WebhookDeliverer(
        WebhookOutbox(engine),
        store,
        lambda job: {"id": str(job.id), "status": job.status.value},
        secret=SECRET,
        allowed_hosts=("127.0.0.1",),
        timeout_s=5,
        backoff=Backoff(base_s=0.01, cap_s=0.02),
        **kw,
    )


async def _until_settled(deliverer: WebhookDeliverer, outbox: WebhookOutbox, job_id: Any) -> Any:
    for _ in range(200):
        await deliverer.run_once()
        [delivery] = await outbox.for_job(job_id)
        if delivery.status != "pending":
            return delivery
        await asyncio.sleep(0.02)
    raise AssertionError("the delivery never settled")


async def test_a_500_is_retried_with_the_same_id_and_a_verifiable_signature(engine: AsyncEngine) -> None:
    store = SqlJobStore(engine)
    with Receiver([500, 200]) as receiver:
        job = await store.submit("image", {"n": 1}, webhook_url=receiver.url)
        await store.claim("d1", lease_s=30)
        await store.complete(job.id, "d1")
        deliverer = _deliverer(engine, store)
        deliverer.start()  # the HTTP client
        try:
            delivery = await _until_settled(deliverer, WebhookOutbox(engine), job.id)
        finally:
            await deliverer.stop()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    first, second = receiver.received
    assert (first.status, second.status) == (500, 200)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(delivery.id)
    for got in receiver.received:
        expected = _reference_signature(SECRET, got.headers["webhook-id"], got.headers["webhook-timestamp"], got.body)
        assert got.headers["webhook-signature"] == expected
        assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
        assert got.json["type"] == "job.succeeded" and got.json["data"] == {"id": str(job.id), "status": "succeeded"}


async def test_a_receiver_that_never_accepts_is_given_up_after_max_attempts(engine: AsyncEngine) -> None:
    store = SqlJobStore(engine)
    with Receiver([503]) as receiver:
        job = await store.submit("image", {"n": 1}, webhook_url=receiver.url)
        await store.claim("d1", lease_s=30)
        await store.complete(job.id, "d1")
        deliverer = _deliverer(engine, store, max_attempts=3)
        deliverer.start()
        try:
            delivery = await _until_settled(deliverer, WebhookOutbox(engine), job.id)
        finally:
            await deliverer.stop()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 503")
    assert len(receiver.received) == 3


async def test_a_target_refused_at_send_time_is_given_up_without_a_call(engine: AsyncEngine) -> None:
    store = SqlJobStore(engine)
    job = await store.submit("image", {"n": 1}, webhook_url="http://10.0.0.7/hook")  # as if re-pointed since
    await store.claim("d1", lease_s=30)
    await store.complete(job.id, "d1")
    deliverer = _deliverer(engine, store)
    deliverer.start()
    try:
        delivery = await _until_settled(deliverer, WebhookOutbox(engine), job.id)
    finally:
        await deliverer.stop()
    assert delivery.status == "failed" and "inside the network" in (delivery.last_error or "")
