"""The OpenAI-compatible images API (serve_app/api/compat/openai.py) through the real ``openai`` SDK, pointed at the
in-process app served by uvicorn on a free 127.0.0.1 port (the SDK's own HTTP stack, real sockets, real URLs), over
real services on the tiny model.

Values are checked independently of the code: pixels against the native API's PNGs and the uploaded image, URL
signatures against an HMAC computed here, jobs through the native jobs list.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import openai
import pytest
import uvicorn
from PIL import Image

from serve_app.auth.keys import SqlKeyStore
from serve_app.config import AuthConfig, QuotaConfig, Settings
from tests.api.conftest import Local, create_api_lazily

SECRET = "test-url-secret-0123456789abcdef"
PROMPT = "a lantern on a mossy stone"
NATIVE = "/api/v2/images/generate"
JOBS = "/api/v2/images/jobs"


class Server:
    """The app under uvicorn in a daemon thread; ``url`` is its root."""

    def __init__(self, local: Local) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = uvicorn.Config(
            create_api_lazily(local), host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"
        self.local = local

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(60)

    def sdk(self, api_key: str = "ignored-while-auth-is-off") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=120)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)

    def make_key(self, scopes: list[str]) -> str:
        """A key in the app's database, made on the server's own event loop."""
        store = SqlKeyStore(self.local.edge.services.engine)
        loop = self.local._loop
        assert loop is not None
        key, _ = asyncio.run_coroutine_threadsafe(store.create("openai-test", scopes), loop).result(30)
        return key


def serve(local: Local, data_dir: Path) -> Server:
    """A server over its own database and asset folder (nothing cached from another server's images)."""
    local.ready = True
    local.settings = Settings(data_dir=str(data_dir))
    return Server(local)


@pytest.fixture
def server(local: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("LIMNER_URL_SECRET", SECRET)
    with serve(local, tmp_path / "data") as running:
        yield running


def native_pixels(local: Local, data_dir: Path, *bodies: dict[str, Any]) -> list[np.ndarray]:
    """The native API's images of ``bodies``, made by a fresh server: an independent generation, never a cache hit
    on an image the OpenAI route made."""
    with serve(local, data_dir) as fresh, fresh.http() as http:
        return [pixels(native(http, **body)) for body in bodies]


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def within_a_grey_level(a: np.ndarray, b: np.ndarray) -> bool:
    """Images of one batch and of another: batched matmuls may round differently in the last bit (the tolerance of
    tests/pipelines/test_sdxl.py::test_image_does_not_depend_on_its_batch)."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def b64_pixels(item: Any) -> np.ndarray:
    assert item.b64_json is not None and item.url is None
    return pixels(base64.b64decode(item.b64_json))


def native(http: httpx.Client, **body: Any) -> bytes:
    answer = http.post(NATIVE, json={"prompt": PROMPT, "width": 64, "height": 64, "steps": 2, **body})
    assert answer.status_code == 200, answer.text
    return answer.content


def jobs_of(http: httpx.Client) -> list[dict[str, Any]]:
    answer = http.get(JOBS, params={"limit": 100})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]  # type: ignore[no-any-return]


def test_n_images_are_one_job_of_one_batch_and_follow_the_seed_family(local: Local, tmp_path: Path) -> None:
    with serve(local, tmp_path / "openai") as server:
        batches_before = len(local.batches)
        answer = server.sdk().images.generate(
            model="dall-e-3", prompt=PROMPT, n=2, size="64x64", extra_body={"seed": 123, "steps": 2}
        )
        assert 2 in local.batches[batches_before:]  # the generator drew both in one call
        with server.http() as http:
            made = jobs_of(http)
    assert [j["kind"] for j in made] == ["generate"]  # one job for both images
    assert made[0]["status"] == "succeeded" and len(made[0]["result"]["images"]) == 2
    assert len(answer.data) == 2 and answer.created > 0
    first, second = (b64_pixels(item) for item in answer.data)
    assert first.shape == second.shape == (64, 64, 3)
    assert np.abs(first.astype(int) - second.astype(int)).max() > 10  # two seeds, two images
    assert all(item.revised_prompt and PROMPT in item.revised_prompt for item in answer.data)
    # The family's seeds are seed and seed + 1: each is the native API's image of that seed (drawn alone there).
    by_seed = native_pixels(local, tmp_path / "native", {"seed": 123}, {"seed": 124})
    assert within_a_grey_level(first, by_seed[0]) and within_a_grey_level(second, by_seed[1])


def test_the_same_seed_gives_the_same_pixels_as_the_native_api(local: Local, tmp_path: Path) -> None:
    extra = {"seed": 7, "num_inference_steps": 2, "negative_prompt": "blurry", "guidance_scale": 4.0}
    with serve(local, tmp_path / "openai") as server:
        # quality hd is a step preset; the explicit steps override it.
        answer = server.sdk().images.generate(prompt=PROMPT, size="64x64", quality="hd", extra_body=extra)
    same, other_negative = native_pixels(
        local,
        tmp_path / "native",
        {"seed": 7, "negative_prompt": "blurry", "guidance": 4.0},
        {"seed": 7, "negative_prompt": "people, text", "guidance": 4.0},
    )
    assert np.array_equal(b64_pixels(answer.data[0]), same)
    assert not np.array_equal(same, other_negative)  # so negative_prompt did reach the image


def test_a_url_answer_is_signed_fetchable_without_a_key_and_expires(server: Server) -> None:
    sdk = server.sdk()
    extra = {"seed": 11, "steps": 2}
    by_url = sdk.images.generate(prompt=PROMPT, size="64x64", response_format="url", extra_body=extra)
    by_b64 = sdk.images.generate(prompt=PROMPT, size="64x64", extra_body=extra)
    url = by_url.data[0].url
    assert url is not None and by_url.data[0].b64_json is None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == server.url  # absolute, on this server
    name = parts.path.rsplit("/", 1)[1]
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    expires = int(query["expires"])
    assert 3500 < expires - time.time() <= 3600  # ingress.signed_url_ttl_s, one hour by default
    expected = hmac.new(SECRET.encode(), f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()
    assert query["signature"] == expected

    with httpx.Client(timeout=60) as plain:  # no Authorization header at all
        fetched = plain.get(url)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert np.array_equal(pixels(fetched.content), b64_pixels(by_b64.data[0]))
        assert hashlib.sha256(fetched.content).hexdigest() == name.split(".")[0]  # content-addressed

        flipped = ("0" if expected[0] != "0" else "1") + expected[1:]
        tampered = plain.get(url.replace(expected, flipped))
        assert openai_error(tampered, 403)["param"] == "signature"
        other_name = plain.get(url.replace(name, "0" * 64 + ".png"))
        assert openai_error(other_name, 403)["param"] == "signature"  # the signature covers the name

        past = int(time.time()) - 10
        old = hmac.new(SECRET.encode(), f"{name}\n{past}".encode(), hashlib.sha256).hexdigest()
        expired = plain.get(f"{server.url}/v1/images/files/{name}", params={"expires": past, "signature": old})
        assert openai_error(expired, 403)["param"] == "expires"

        later = int(time.time()) + 600
        missing = "f" * 64 + ".png"
        signed = hmac.new(SECRET.encode(), f"{missing}\n{later}".encode(), hashlib.sha256).hexdigest()
        gone = plain.get(f"{server.url}/v1/images/files/{missing}", params={"expires": later, "signature": signed})
        openai_error(gone, 404)


def _start_image() -> bytes:
    x = np.linspace(0, 255, 64, dtype=np.uint8)
    rgb = np.stack([np.tile(x, (64, 1)), np.tile(x[:, None], (1, 64)), np.full((64, 64), 90, np.uint8)], axis=-1)
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, "PNG")
    return out.getvalue()


def test_an_edit_is_image_to_image_and_a_mask_keeps_the_rest(server: Server) -> None:
    start = _start_image()
    alpha = np.full((64, 64), 255, np.uint8)
    alpha[:, :32] = 0  # transparent: edit the left half
    mask_rgba = np.dstack([np.zeros((64, 64, 3), np.uint8), alpha])
    mask = io.BytesIO()
    Image.fromarray(mask_rgba, "RGBA").save(mask, "PNG")
    sdk = server.sdk()
    extra = {"seed": 5, "steps": 2, "strength": "0.9"}  # a numeric string, as a form field is anyway

    plain = sdk.images.edit(image=("start.png", start, "image/png"), prompt=PROMPT, n=1, extra_body=extra)
    edited = b64_pixels(plain.data[0])
    assert edited.shape == (64, 64, 3)  # auto: the image's own size
    assert not np.array_equal(edited, pixels(start))

    masked = sdk.images.edit(
        image=("start.png", start, "image/png"),
        mask=("mask.png", mask.getvalue(), "image/png"),
        prompt=PROMPT,
        n=2,
        size="64x64",
        extra_body=extra,
    )
    assert len(masked.data) == 2
    original = pixels(start)
    for item in masked.data:
        out = b64_pixels(item)
        assert np.array_equal(out[:, 32:], original[:, 32:])  # opaque in the mask: the original, exactly
        assert not np.array_equal(out[:, :32], original[:, :32])
    assert within_a_grey_level(b64_pixels(masked.data[0])[:, :32], edited[:, :32])  # the same seed's img2img
    with server.http() as http:
        assert [j["kind"] for j in jobs_of(http)] == ["generate", "generate"]  # one job per edit


@pytest.mark.parametrize("size", ["big", "64", "64x64x64", "0x64", "1024*1024", "64x63"])
def test_a_bad_size_is_a_400_naming_size(server: Server, size: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.sdk().images.generate(prompt=PROMPT, size=size, extra_body={"steps": 2})
    assert caught.value.status_code == 400
    error = openai_error(caught.value.response, 400)
    assert error["param"] == "size" and error["type"] == "invalid_request_error", error
    with server.http() as http:
        assert jobs_of(http) == []  # refused before any job


def test_request_validation_errors_are_400s_in_the_openai_shape(server: Server) -> None:
    with server.http() as http:
        assert openai_error(http.post("/v1/images/generations", json={"prompt": PROMPT, "n": 0}), 400)["param"] == "n"
        assert openai_error(http.post("/v1/images/generations", json={"n": 1}), 400)["param"] == "prompt"
        assert openai_error(
            http.post("/v1/images/generations", content=b"{", headers={"content-type": "application/json"}), 400
        )
        bad_quality = http.post("/v1/images/generations", json={"prompt": PROMPT, "quality": "ultra"})
        assert openai_error(bad_quality, 400)["param"] == "quality"
        no_image = http.post("/v1/images/edits", files={"prompt": (None, PROMPT)})
        assert openai_error(no_image, 400)["param"] == "image"
        not_an_image = http.post("/v1/images/edits", files={"prompt": (None, PROMPT), "image": ("x.png", b"nope")})
        assert openai_error(not_an_image, 400)["param"] == "image"
        torn = http.post(  # no boundary to split on: the form parser's refusal, as a 400 naming the body
            "/v1/images/edits", content=b"prompt=x", headers={"content-type": "multipart/form-data"}
        )
        assert openai_error(torn, 400)["param"] == "body"
        assert jobs_of(http) == []
        # The native routes keep the app's one shape.
        native_error = http.post(NATIVE, json={"prompt": PROMPT, "width": 3})
        assert native_error.status_code == 422 and set(native_error.json()["error"]) == {"type", "message", "param"}


def test_lenient_bodies_coerce_numeric_strings_and_ignore_unknown_keys(local: Local, tmp_path: Path) -> None:
    body = {
        "prompt": PROMPT,
        "n": "2",
        "seed": "9",
        "steps": "2.0",
        "guidance_scale": "4.0",
        "size": "64x64",
        "response_format": "b64_json",
        "moderation": "low",
        "background": "auto",
        "some_client_key": {"nested": True},
    }
    with serve(local, tmp_path / "openai") as server, server.http() as http:
        answer = http.post("/v1/images/generations", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert len(data) == 2 and set(data[0]) == {"b64_json", "revised_prompt"}
    (same,) = native_pixels(local, tmp_path / "native", {"seed": 9, "guidance": 4.0})
    assert within_a_grey_level(pixels(base64.b64decode(data[0]["b64_json"])), same)  # n=2: drawn in a batch


def test_models_list_the_default_the_openai_names_and_the_themes(server: Server) -> None:
    sdk = server.sdk()
    ids = [m.id for m in sdk.models.list()]
    assert {"tiny", "dall-e-2", "dall-e-3", "gpt-image-1", "local", "ink-and-wash"} <= set(ids), ids
    themed = sdk.images.generate(model="ink-and-wash", prompt=PROMPT, size="64x64", extra_body={"seed": 3, "steps": 2})
    revised = themed.data[0].revised_prompt
    assert revised is not None and PROMPT in revised and revised != PROMPT  # the theme's words were added
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.images.generate(model="no-such-model", prompt=PROMPT, size="64x64")
    error = openai_error(caught.value.response, 404)
    assert error["param"] == "model" and error["code"] == "model_not_found"


def test_with_auth_on_the_sdks_key_works_and_a_missing_or_bad_key_is_a_401(local: Local, tmp_path: Path) -> None:
    local.auth = AuthConfig(mode="keys", limits=QuotaConfig(read_per_min=None, generate_per_min=None))
    try:
        with serve(local, tmp_path / "data") as server:
            key = server.make_key(["images:generate", "images:read"])
            answer = server.sdk(key).images.generate(
                prompt=PROMPT, size="64x64", response_format="url", extra_body={"seed": 1, "steps": 2}
            )
            url = answer.data[0].url
            assert url is not None
            with pytest.raises(openai.AuthenticationError) as caught:
                server.sdk("lmn_not-a-key").images.generate(prompt=PROMPT, size="64x64")
            error = openai_error(caught.value.response, 401)
            assert error["code"] == "invalid_api_key" and error["param"] == "Authorization"
            with httpx.Client(timeout=60) as plain:
                missing = plain.post(f"{server.url}/v1/images/generations", json={"prompt": PROMPT})
                assert openai_error(missing, 401)["code"] == "invalid_api_key"
                assert missing.headers["www-authenticate"].startswith("Bearer")
                assert openai_error(plain.get(f"{server.url}/v1/models"), 401)
                assert plain.get(url).status_code == 200  # the signed URL needs no key
            read_only = server.make_key(["images:read"])
            with pytest.raises(openai.PermissionDeniedError) as denied:
                server.sdk(read_only).images.generate(prompt=PROMPT, size="64x64")
            assert "images:generate" in openai_error(denied.value.response, 403)["message"]
            assert [m.id for m in server.sdk(read_only).models.list()]
    finally:
        local.auth = None


def test_quality_hd_is_the_hires_fix_from_half_the_size(local: Local, tmp_path: Path) -> None:
    with serve(local, tmp_path / "openai") as server:
        answer = server.sdk().images.generate(prompt=PROMPT, size="128x128", quality="hd", extra_body={"seed": 21})
        with server.http() as http:
            (job,) = jobs_of(http)
    image = b64_pixels(answer.data[0])
    assert image.shape == (128, 128, 3)  # the asked size
    assert len(job["result"]["images"]) == 2  # the upscaled image first, then the one drawn at 64 x 64
    # The native API's hires upscale of the same seed's 64 x 64 image (tiles of the 64 px native side).
    hires = {"op": "upscale", "scale": 2, "method": "hires", "denoise": 0.35, "tile": 64, "overlap": 16}
    (same,) = native_pixels(local, tmp_path / "native", {"seed": 21, "steps": None, "enhance": [hires]})
    assert np.array_equal(image, same)


def test_the_openapi_document_declares_the_openai_error_shape(server: Server) -> None:
    with server.http() as http:
        paths = http.get("/openapi.json").json()["paths"]
        for path, method in [("/v1/images/generations", "post"), ("/v1/images/edits", "post")]:
            responses = paths[path][method]["responses"]
            for code in ("400", "401", "403", "404", "413", "415", "429", "503"):
                schema = responses[code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/OpenAIErrorResponse"}, (path, code)
        assert "multipart/form-data" in paths["/v1/images/edits"]["post"]["requestBody"]["content"]
        # A body that is not UTF-8 is a 400 naming the body, in OpenAI's shape (the native routes answer theirs).
        bad = http.post("/v1/images/generations", content=b'{"\xff": 1}', headers={"content-type": "application/json"})
        assert openai_error(bad, 400)["param"] == "body"
        # Refused by the JSON-only middleware before any route runs: the app's shape, which OpenAI's parses too.
        text = http.post("/v1/images/generations", content=b"{}", headers={"content-type": "text/plain"})
        assert text.status_code == 415 and {"message", "type", "param"} <= set(text.json()["error"])
