"""The edge's hardening through HTTP: security headers on every answer, CORS only for configured origins, and
decompression bombs refused from their header (422 naming the field), never inflated."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.conftest import create_api_lazily

FOUNDRY = "http://localhost:30000"


def _bomb(width: int, height: int) -> bytes:
    """A real 1 x 1 PNG whose header is rewritten to announce ``width`` x ``height`` (CRC fixed): a few dozen bytes
    that a decoder trusting the header would try to inflate into width * height pixels."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (9, 9, 9)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    start = 8  # after the signature: length (4), "IHDR" (4), data (13), CRC (4)
    assert data[start + 4 : start + 8] == b"IHDR"
    data[start + 8 : start + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[start + 4 : start + 21])) & 0xFFFFFFFF
    data[start + 21 : start + 25] = struct.pack(">I", crc)
    return bytes(data)


def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    for response in (
        client.get("/healthz"),
        client.get("/api/v2/images/00000000-0000-0000-0000-000000000000"),  # an error answer too
        client.get("/docs"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"


def test_no_cors_by_default(client: TestClient) -> None:
    preflight = client.options(
        "/api/v2/images/jobs", headers={"Origin": FOUNDRY, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    plain = client.get("/healthz", headers={"Origin": FOUNDRY})
    assert "access-control-allow-origin" not in plain.headers


@pytest.fixture
def cors_client(local: Any, tmp_path: Any) -> Iterator[TestClient]:
    from serve_app.config import Settings

    local.settings = Settings(data_dir=str(tmp_path / "data"))
    local.cors_origins = [FOUNDRY]
    try:
        with TestClient(create_api_lazily(local)) as c:
            yield c
    finally:
        local.cors_origins = []


def test_a_configured_origin_gets_cors_and_another_does_not(cors_client: TestClient) -> None:
    preflight = cors_client.options(
        "/api/v2/images/jobs",
        headers={
            "Origin": FOUNDRY,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == FOUNDRY
    assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
    got = cors_client.get("/healthz", headers={"Origin": FOUNDRY})
    assert got.headers["access-control-allow-origin"] == FOUNDRY
    assert "location" in got.headers["access-control-expose-headers"].lower()
    other = cors_client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(("width", "height"), [(10_000, 10_000), (30_000, 30_000)])
def test_a_decompression_bomb_is_a_422_naming_the_body(client: TestClient, width: int, height: int) -> None:
    """10000 x 10000 passes Pillow's own guard (a warning) but not the service's 8192 x 8192; 30000 x 30000 trips
    Pillow's: both are refused from the header, with the one error shape."""
    bomb = _bomb(width, height)
    assert len(bomb) < 100 and struct.unpack(">II", bomb[16:24]) == (width, height)
    r = client.post("/api/v2/images/uploads", content=bomb, headers={"Content-Type": "image/png"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == "body"


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_a_415_naming_the_content_type(client: TestClient, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = client.post("/api/v2/images/jobs", content=b'{"prompt": "a lamp", "seed": 1}', headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["error"] == {
        "type": "unsupported_media_type",
        "message": r.json()["error"]["message"],
        "param": "Content-Type",
    }
    assert client.get("/api/v2/images/jobs", params={"limit": 500}).json()["items"] == []  # nothing was accepted


def test_json_types_and_raw_body_routes_pass(client: TestClient) -> None:
    spec = b'{"grid": {"type": "square", "cols": 2, "rows": 2, "cell_px": 10}}'
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.limner+json"):
        r = client.post("/api/v2/images/overlays/geometry", content=spec, headers={"Content-Type": content_type})
        assert r.status_code == 200, (content_type, r.text)
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(png, "PNG")
    upload = client.post("/api/v2/images/uploads", content=png.getvalue(), headers={"Content-Type": "image/png"})
    assert upload.status_code == 201, upload.text  # an image upload is its own bytes
    empty = client.post("/api/v2/images/jobs")  # no body: no type to check; the route says what is missing
    assert empty.status_code == 422 and empty.json()["error"]["type"] == "invalid_request"
