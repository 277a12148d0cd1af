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
