"""Webhooks through HTTP on the tiny model: a job carrying ``webhook_url`` POSTs its end (the job document, as
GET /jobs/{id} answers it) to a real local receiver; a target inside the network and a service without a
secret are 422s naming ``webhook_url``."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import create_api_lazily
from tests.webhook_receiver import Receiver

JOBS = "/api/v2/images/jobs"
SECRET = "whsec_" + base64.b64encode(b"limner-webhook-test-secret-32byt").decode()


@pytest.fixture
def hooked(local: Any, tmp_path: Any) -> Iterator[TestClient]:
    from serve_app.config import Settings

    local.ready = True
    local.settings = Settings(data_dir=str(tmp_path / "data"))
    local.webhook_secret = SECRET
    try:
        with TestClient(create_api_lazily(local)) as c:
            yield c
    finally:
        local.webhook_secret = None


def test_a_job_with_a_webhook_posts_its_document_when_it_ends(hooked: TestClient) -> None:
    with Receiver([200]) as receiver:
        body = {"prompt": "a webhook lantern", "width": 64, "height": 64, "steps": 2, "seed": 5}
        r = hooked.post(JOBS, params={"wait": 120, "webhook_url": receiver.url}, json=body)
        assert r.status_code == 200, r.text
        job = r.json()
        deadline = time.monotonic() + 30
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
    [got] = receiver.received
    assert got.json["type"] == "job.succeeded"
    doc = got.json["data"]
    assert doc["id"] == job["id"] and doc["status"] == "succeeded" and doc["image_id"] == job["image_id"]
    assert got.headers["webhook-signature"].startswith("v1,") and got.headers["content-type"] == "application/json"


def test_a_webhook_inside_the_network_is_a_422_and_nothing_is_queued(hooked: TestClient) -> None:
    before = len(hooked.get(JOBS, params={"limit": 500}).json()["items"])
    r = hooked.post(JOBS, params={"webhook_url": "http://10.0.0.9/hook"}, json={"prompt": "x", "seed": 1})
    assert r.status_code == 422 and r.json()["error"]["param"] == "webhook_url"
    assert len(hooked.get(JOBS, params={"limit": 500}).json()["items"]) == before


def test_a_service_without_a_secret_refuses_webhooks(client: TestClient) -> None:
    r = client.post(JOBS, params={"webhook_url": "https://93.184.216.34/hook"}, json={"prompt": "x", "seed": 1})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["param"] == "webhook_url" and "LIMNER_WEBHOOK_SECRET" in error["message"]


def _standard_webhooks_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The spec's verification, written here from standardwebhooks.com (not the service's code)."""
    import hashlib
    import hmac

    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(part.split(",", 1)[1] == expected for part in headers["webhook-signature"].split(" "))


def test_a_tenants_deliveries_are_signed_with_its_own_secret(local: Any, tmp_path: Any) -> None:
    import hashlib
    import hmac

    from serve_app.auth.keys import SqlKeyStore
    from serve_app.config import AuthConfig, Settings

    local.settings = Settings(data_dir=str(tmp_path / "data"))
    local.webhook_secret = SECRET
    local.auth = AuthConfig(mode="keys")
    try:
        with TestClient(create_api_lazily(local)) as client, Receiver([200]) as receiver:
            assert client.portal is not None
            store = SqlKeyStore(local.edge.services.engine)
            key, _ = client.portal.call(lambda: store.create("hooks", ["images:generate"], tenant="guild-9"))
            body = {"prompt": "a signed scroll", "width": 64, "height": 64, "steps": 2}
            r = client.post(JOBS, params={"webhook_url": receiver.url}, json=body, headers={"X-API-Key": key})
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + 30
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        local.webhook_secret = None
        local.auth = None
    [got] = receiver.received
    master = base64.b64decode(SECRET.removeprefix("whsec_"))
    derived = hmac.new(master, b"limner-webhook-tenant:guild-9", hashlib.sha256).digest()
    tenant_secret = "whsec_" + base64.b64encode(derived).decode()
    assert _standard_webhooks_verify(tenant_secret, got.headers, got.body)
    assert not _standard_webhooks_verify(SECRET, got.headers, got.body)  # not the service's own secret


def test_a_job_can_ask_to_be_told_when_it_starts_too(hooked: TestClient) -> None:
    with Receiver([200, 200]) as receiver:
        body = {"prompt": "a told lantern", "width": 64, "height": 64, "steps": 2, "seed": 6}
        params = {"wait": 120, "webhook_url": receiver.url, "webhook_on_start": "true"}
        r = hooked.post(JOBS, params=params, json=body)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while len(receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    events = sorted(got.json["type"] for got in receiver.received)
    assert events == ["job.started", "job.succeeded"]
    ids = {got.headers["webhook-id"] for got in receiver.received}
    assert len(ids) == 2  # two messages, each its own id
    started = next(got.json["data"] for got in receiver.received if got.json["type"] == "job.started")
    assert started["id"] == r.json()["id"]
    unasked = hooked.post(JOBS, params={"webhook_on_start": "true"}, json=body)
    assert unasked.status_code == 422 and unasked.json()["error"]["param"] == "webhook_on_start"
