"""pipelines/remote/base.py: the base check's refusals, create(), the default enhancements and the image helpers;
pipelines/remote/__init__.py: backend_class."""

from __future__ import annotations

import base64
import importlib.util
import io
from collections.abc import Sequence

import httpx
import pytest
from PIL import Image

from pipelines.backend import Capability, ImageBackend
from pipelines.errors import InputError
from pipelines.remote import BACKENDS, backend_class
from pipelines.remote.base import RemoteBackend, RemoteLimits, b64, data_url, decode_image, image_bytes
from pipelines.remote.errors import BackendBudgetError, BackendUnavailable, RemoteError
from pipelines.remote.transport import Transport, TransportPolicy
from pipelines.request import GenerationRequest, GenerationResult, StepCallback


class Dummy(RemoteBackend):
    """The smallest concrete backend: txt2img only, tight limits."""

    name = "dummy"
    default_base_url = "https://api.dummy.test/v1"
    key_env = "LIMNER_DUMMY_KEY"
    capabilities = frozenset({Capability.TXT2IMG})
    limits = RemoteLimits(multiple=64, min_size=128, max_size=1024, max_steps=50, schedulers=("euler",),
                          max_prompt_chars=20)  # fmt: skip

    @classmethod
    def classify(cls, response: httpx.Response) -> RemoteError | None:
        if response.status_code == 429:
            return BackendBudgetError(cls.name, "out of credit", status=429)
        return None

    async def generate(
        self, requests: Sequence[GenerationRequest], on_step: StepCallback | None = None
    ) -> GenerationResult:
        images = [Image.new("RGB", (r.width, r.height)) for r in requests]
        return GenerationResult(images, [r.seed for r in requests], {"total_s": 0.0}, len(requests))


class Sized(Dummy):
    """Exact sizes only, no steps, any scheduler (OpenAI-like), with img2img."""

    name = "sized"
    capabilities = frozenset({Capability.TXT2IMG, Capability.IMG2IMG})
    limits = RemoteLimits(sizes=((1024, 1024), (1536, 1024)), max_steps=None, schedulers=None)


def _backend(cls: type[RemoteBackend] = Dummy, model: str | None = None) -> RemoteBackend:
    return cls(Transport(cls.name, cls.default_base_url, {}), model=model)


def _request(**fields: object) -> GenerationRequest:
    return GenerationRequest(**{"prompt": "a cat", "width": 512, "height": 256, "steps": 20, **fields})  # type: ignore[arg-type]


def test_a_request_within_the_limits_passes() -> None:
    backend = _backend()
    backend.check(_request())
    backend.check(_request(width=128, height=1024, steps=50, prompt="x" * 20))
    assert isinstance(backend, ImageBackend)


@pytest.mark.parametrize(
    ("fields", "param", "allowed"),
    [
        ({"mode": "img2img", "init_image": Image.new("RGB", (8, 8))}, "mode", "one of ['txt2img']"),
        ({"control_image": Image.new("RGB", (8, 8))}, "control_image", "no control image"),
        ({"width": 520}, "width", "a multiple of 64 from 128 to 1024"),
        ({"width": 64}, "width", "a multiple of 64 from 128 to 1024"),
        ({"height": 1088}, "height", "a multiple of 64 from 128 to 1024"),
        ({"steps": 51}, "steps", "at most 50"),
        ({"scheduler": "ddim"}, "scheduler", "one of ['euler']"),
        ({"prompt": "x" * 21}, "prompt", "at most 20"),
        ({"negative_prompt": "y" * 21}, "negative_prompt", "at most 20"),
    ],
)
def test_refusals_name_the_field_and_the_backend(fields: dict[str, object], param: str, allowed: str) -> None:
    with pytest.raises(InputError) as info:
        _backend().check(_request(**fields))
    assert info.value.param == param
    assert info.value.allowed.startswith(allowed)
    assert info.value.allowed.endswith("on backend dummy")


def test_exact_sizes_and_no_steps() -> None:
    backend = _backend(Sized, model="gpt-image-1")
    backend.check(_request(width=1536, height=1024, steps=500, scheduler="ddim"))  # steps and scheduler ignored
    backend.check(_request(width=1024, height=1024, mode="img2img", init_image=Image.new("RGB", (8, 8))))
    with pytest.raises(InputError) as info:
        backend.check(_request(width=1024, height=1536))
    assert info.value.param == "width" and info.value.value == "1024x1536"
    assert info.value.allowed == "one of 1024x1024, 1536x1024 on backend sized (gpt-image-1)"


def test_check_batch_checks_each_and_allows_more_than_max_images() -> None:
    backend = _backend()
    backend.check_batch([_request(seed=s) for s in range(5)])  # max_images is 1: generate splits
    with pytest.raises(InputError) as info:
        backend.check_batch([_request(), _request(steps=99)])
    assert info.value.param == "steps"


async def test_create_builds_the_transport_with_auth_and_classify() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429 if request.url.path.endswith("/quota") else 200)

    policy = TransportPolicy(max_retries=5)
    backend = Dummy.create("k-1", model="m", price_usd=0.01, policy=policy, http_transport=httpx.MockTransport(handler))
    assert (backend.model, backend.price_usd, backend.transport.policy) == ("m", 0.01, policy)
    assert backend.transport.backend == "dummy"
    await backend.transport.request("GET", "/ping")
    assert str(seen[0].url) == "https://api.dummy.test/v1/ping"
    assert seen[0].headers["authorization"] == "Bearer k-1"
    with pytest.raises(BackendBudgetError):  # the class's classify, so no retries
        await backend.transport.request("GET", "/quota")
    assert len(seen) == 2
    await backend.aclose()

    other = Dummy.create("k-2", base_url="http://local.test/x/", http_transport=httpx.MockTransport(handler))
    await other.transport.request("GET", "/y")
    assert str(seen[-1].url) == "http://local.test/x/y"
    assert other.model is None and other.price_usd is None


def test_cost_prefers_the_api_figure() -> None:
    backend = Dummy(Transport("dummy", "http://x.test", {}), price_usd=0.02)
    assert backend.cost(0.0042) == 0.0042
    assert backend.cost(None) == 0.02
    assert _backend().cost(None) is None


async def test_enhancements_are_refused_by_default() -> None:
    backend = _backend()
    with pytest.raises(InputError) as info:
        await backend.upscale(Image.new("RGB", (8, 8)), 2)
    assert info.value.param == "method" and "dummy" in info.value.allowed
    with pytest.raises(InputError) as info:
        await backend.face_fix(Image.new("RGB", (8, 8)))
    assert info.value.param == "method" and "dummy" in info.value.allowed


def test_image_helpers_round_trip() -> None:
    image = Image.new("RGBA", (3, 2), (10, 20, 30, 128))
    png = image_bytes(image)
    assert png.startswith(b"\x89PNG")
    assert base64.b64decode(b64(image)) == png
    assert data_url(image) == "data:image/png;base64," + b64(image)
    assert data_url(image.convert("RGB"), "JPEG").startswith("data:image/jpeg;base64,/9j/")
    decoded = decode_image(png)
    assert decoded.mode == "RGB" and decoded.size == (3, 2) and decoded.getpixel((0, 0)) == (10, 20, 30)


@pytest.mark.parametrize("data", [b"", b"<html>not an image</html>", image_bytes(Image.new("RGB", (64, 64)))[:40]])
def test_decode_image_of_non_images_is_retryable(data: bytes) -> None:
    with pytest.raises(BackendUnavailable) as info:
        decode_image(data, backend="fal")
    assert type(info.value) is BackendUnavailable and info.value.backend == "fal" and not info.value.permanent


def test_decode_image_loads_fully() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="PNG")
    image = decode_image(buffer.getvalue())
    buffer.close()
    assert image.getpixel((3, 3)) == (1, 2, 3)


def test_backend_class() -> None:
    assert BACKENDS == ("getimg", "fal", "openai", "runware")
    with pytest.raises(ValueError, match="unknown remote backend 'dummy'"):
        backend_class("dummy")


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_class_finds_each_module(name: str) -> None:
    if importlib.util.find_spec(f"pipelines.remote.{name}") is None:
        pytest.skip(f"pipelines/remote/{name}.py is not written yet")
    cls = backend_class(name)
    assert issubclass(cls, RemoteBackend) and cls.name == name
