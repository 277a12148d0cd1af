"""The four remote backends against the local fake APIs, over real HTTP (tests/remote_fakes).

Every image the fakes draw is filled with ``expected_rgb(prompt, seed)``, computed by the fakes' own module, so a
test checks what the backend decoded against a figure that owes nothing to the client code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from PIL import Image

from pipelines.errors import Cancelled, InputError
from pipelines.remote import backend_class
from pipelines.remote.base import RemoteBackend
from pipelines.remote.errors import (
    BackendAuthError,
    BackendBudgetError,
    BackendInputError,
    BackendUnavailable,
)
from pipelines.remote.transport import TransportPolicy
from pipelines.request import GenerationRequest
from tests.remote_fakes import KEYS, error_body, expected_rgb

POLICY = TransportPolicy(backoff_base_s=0.01, backoff_max_s=0.02, max_retries=2, timeout_s=10.0)
PRICE = 0.05  # the configured price, recorded where the API reports no cost
GETIMG_COST, RUNWARE_COST = 0.0042, 0.0038  # what the fakes report
# A size each backend accepts (OpenAI's gpt-image-1 takes only its three).
SIZES = {"getimg": (512, 768), "fal": (520, 392), "openai": (1024, 1536), "runware": (640, 384)}
AUTH = {"getimg": "Bearer ", "fal": "Key ", "openai": "Bearer ", "runware": "Bearer "}

Make = Callable[..., RemoteBackend]


@pytest.fixture
async def make(remote_fakes: Any) -> AsyncIterator[Make]:
    """Builds a backend pointed at the fakes (its key right unless ``key`` says otherwise); closes them all after."""
    made: list[RemoteBackend] = []

    def _make(name: str, *, key: str | None = None, **kwargs: Any) -> RemoteBackend:
        backend = backend_class(name).create(
            KEYS[name] if key is None else key, base_url=remote_fakes.base_url(name), policy=POLICY, **kwargs
        )
        if name == "fal":
            backend.poll_s, backend.poll_max_s = 0.01, 0.05  # type: ignore[attr-defined]
        made.append(backend)
        return backend

    yield _make
    for backend in made:
        await backend.aclose()


def request_for(name: str, **fields: Any) -> GenerationRequest:
    """A request the backend accepts, with ``fields`` overriding."""
    width, height = SIZES[name]
    return GenerationRequest(**{"prompt": "a red dragon", "width": width, "height": height, "seed": 7, **fields})


def solid(size: tuple[int, int], rgb: tuple[int, int, int] = (10, 200, 30)) -> Image.Image:
    return Image.new("RGB", size, rgb)


def assert_image(image: Image.Image, size: tuple[int, int], prompt: str, seed: int) -> None:
    assert image.mode == "RGB"
    assert image.size == size
    assert image.getpixel((0, 0)) == expected_rgb(prompt, seed)
    assert image.getpixel((size[0] - 1, size[1] - 1)) == expected_rgb(prompt, seed)


def drawn_seed(name: str, seed: int) -> int:
    """The seed the fake drew with: OpenAI takes none, so its fake fills image i of a call with (prompt, i)."""
    return 0 if name == "openai" else seed


def generation_calls(remote_fakes: Any, name: str, method: str = "POST") -> list[Any]:
    return [call for call in remote_fakes.control.calls[name] if call.method == method]


# ----------------------------------------------------------------------------------------------- every backend


@pytest.mark.parametrize("name", ["getimg", "fal", "openai", "runware"])
def test_module_exports_its_backend(name: str) -> None:
    import importlib

    module = importlib.import_module(f"pipelines.remote.{name}")
    (exported,) = module.__all__
    assert getattr(module, exported) is backend_class(name) and backend_class(name).name == name


EXPECTED_COST = {"getimg": GETIMG_COST, "fal": PRICE, "openai": PRICE, "runware": RUNWARE_COST}


@pytest.mark.parametrize("name", ["getimg", "fal", "openai", "runware"])
async def test_text_to_image(name: str, make: Make, remote_fakes: Any) -> None:
    backend = make(name, price_usd=PRICE)
    request = request_for(name, prompt=f"a {name} map", seed=1234)
    steps: list[tuple[int, int]] = []

    result = await backend.generate([request], on_step=lambda step, total: steps.append((step, total)) or True)

    assert_image(result.images[0], SIZES[name], request.prompt, drawn_seed(name, 1234))
    assert result.seeds == [1234]
    assert result.costs_usd == [pytest.approx(EXPECTED_COST[name])]
    assert result.backend == name and result.batch_size == 1 and result.timings["total_s"] > 0
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1]  # submitted ... done
    first = remote_fakes.control.calls[name][0]
    assert first.headers["authorization"] == AUTH[name] + KEYS[name]


@pytest.mark.parametrize("name", ["getimg", "fal", "openai", "runware"])
async def test_image_to_image(name: str, make: Make, remote_fakes: Any) -> None:
    backend = make(name, price_usd=PRICE)
    size = SIZES[name]
    # An init image of another size: the backend sends it at the request's size.
    request = request_for(name, mode="img2img", init_image=solid((300, 200)), strength=0.6, seed=99)

    result = await backend.generate([request])

    assert_image(result.images[0], size, request.prompt, drawn_seed(name, 99))
    assert result.costs_usd == [pytest.approx(EXPECTED_COST[name])]
    call = generation_calls(remote_fakes, name)[0]
    if name == "getimg":
        assert call.path == "/v1/stable-diffusion-xl/image-to-image"
        assert call.json["strength"] == 0.6 and "width" not in call.json
    elif name == "fal":
        assert call.path == "/fal-ai/fast-sdxl/image-to-image"
        assert call.json["image_url"].startswith("data:image/png;base64,") and call.json["strength"] == 0.6
    elif name == "openai":
        assert call.path == "/images/edits"
        assert call.form["image"].startswith("<file image.png")
        assert call.form["size"] == "1024x1536" and call.form["model"] == "gpt-image-1"
    else:
        (task,) = call.json
        assert task["seedImage"].startswith("data:image/png;base64,") and task["strength"] == 0.6


@pytest.mark.parametrize("name", ["getimg", "fal", "openai", "runware"])
async def test_wrong_key_is_an_auth_error_without_retry(name: str, make: Make, remote_fakes: Any) -> None:
    backend = make(name, key="not-the-key")

    with pytest.raises(BackendAuthError) as caught:
        await backend.generate([request_for(name)])

    assert caught.value.status == 401 and caught.value.backend == name
    assert len(remote_fakes.control.calls[name]) == 1


@pytest.mark.parametrize("name", ["getimg", "fal", "openai", "runware"])
async def test_server_errors_are_retried(name: str, make: Make, remote_fakes: Any) -> None:
    backend = make(name)
    remote_fakes.control.fail(name, 503, times=2)

    result = await backend.generate([request_for(name)])

    assert_image(result.images[0], SIZES[name], "a red dragon", drawn_seed(name, 7))
    assert len(generation_calls(remote_fakes, name)) == 3  # two 503s, then the generation


@pytest.mark.parametrize("name", ["getimg", "openai", "runware"])
async def test_cancel_before_submit_makes_no_call(name: str, make: Make, remote_fakes: Any) -> None:
    backend = make(name)

    with pytest.raises(Cancelled):
        await backend.generate([request_for(name)], on_step=lambda step, total: False)

    assert remote_fakes.control.calls[name] == []  # (FAL's cancel, once submitted: test_fal_cancel_reaches_the_api)


REFUSED = [
    ("getimg", {"width": 520}, "width"),  # not a multiple of 64
    ("getimg", {"height": 192}, "height"),  # under 256
    ("getimg", {"steps": 101}, "steps"),
    ("getimg", {"scheduler": "heun"}, "scheduler"),
    ("getimg", {"control_image": solid((64, 64))}, "control_image"),
    ("fal", {"width": 516}, "width"),
    ("fal", {"steps": 51}, "steps"),
    ("openai", {"width": 512, "height": 512}, "width"),  # not a gpt-image-1 size
    ("openai", {"width": 1792, "height": 1024}, "width"),  # a dall-e-3 size only
    ("runware", {"width": 96}, "width"),  # under 128
    ("runware", {"height": 400}, "height"),  # not a multiple of 64
    ("runware", {"steps": 120}, "steps"),
    ("runware", {"scheduler": "lms"}, "scheduler"),
    ("runware", {"prompt": "x"}, "prompt"),  # Runware needs 2 characters
]


@pytest.mark.parametrize(("name", "fields", "param"), REFUSED)
async def test_check_refuses_before_any_call(
    name: str, fields: dict[str, Any], param: str, make: Make, remote_fakes: Any
) -> None:
    backend = make(name)
    request = request_for(name, **fields)

    with pytest.raises(InputError) as caught:
        backend.check(request)
    assert caught.value.param == param and f"on backend {name}" in caught.value.allowed
    with pytest.raises(InputError):
        await backend.generate([request])  # generate checks first too

    assert remote_fakes.control.calls[name] == []


@pytest.mark.parametrize("name", ["fal", "openai"])
async def test_parameters_the_api_ignores_are_not_refused(name: str, make: Make) -> None:
    # Neither API takes a scheduler; OpenAI takes no steps either (FAL caps them at 50).
    backend = make(name)
    backend.check(request_for(name, scheduler="dpmpp_2m_karras", steps=50 if name == "fal" else 150))


# ------------------------------------------------------------------------------------------------------ GetImg


async def test_getimg_sends_the_documented_v1_fields(make: Make, remote_fakes: Any) -> None:
    backend = make("getimg")
    request = request_for("getimg", negative_prompt="blurry", scheduler="dpmpp_2m_karras", steps=25, guidance=6.5)

    await backend.generate([request])

    (call,) = generation_calls(remote_fakes, "getimg")
    assert call.path == "/v1/stable-diffusion-xl/text-to-image"
    assert call.json == {
        "model": "stable-diffusion-xl-v1-0",
        "prompt": "a red dragon",
        "negative_prompt": "blurry",
        "width": 512,
        "height": 768,
        "steps": 25,
        "guidance": 6.5,
        "seed": 7,
        "scheduler": "dpmsolver++",
        "output_format": "png",
        "response_format": "b64",
    }


async def test_getimg_batch_keeps_request_order(make: Make, remote_fakes: Any) -> None:
    backend = make("getimg")
    requests = [request_for("getimg", prompt=f"map {i}", seed=i + 1) for i in range(3)]

    result = await backend.generate(requests)

    for i, image in enumerate(result.images):
        assert_image(image, (512, 768), f"map {i}", i + 1)
    assert result.seeds == [1, 2, 3] and result.batch_size == 3
    assert len(generation_calls(remote_fakes, "getimg")) == 3


async def test_getimg_quota_is_a_budget_error_without_retry(make: Make, remote_fakes: Any) -> None:
    backend = make("getimg")
    remote_fakes.control.fail("getimg", 402)

    with pytest.raises(BackendBudgetError):
        await backend.generate([request_for("getimg")])

    assert len(remote_fakes.control.calls["getimg"]) == 1


async def test_getimg_v2_downloads_the_result_url(remote_fakes: Any) -> None:
    from pipelines.remote.getimg import GetImgBackend
    from pipelines.remote.transport import Transport

    headers = GetImgBackend.auth_headers(KEYS["getimg"])
    transport = Transport("getimg", remote_fakes.base_url("getimg"), headers, POLICY)
    backend = GetImgBackend(transport, model="flux-schnell", v2=True)
    try:
        result = await backend.generate([request_for("getimg", width=1024, height=1024, seed=5)])

        # v2 takes no seed (the fake picks a random one), so only the size is checked, and the seed is recorded.
        assert result.images[0].size == (1024, 1024) and result.seeds == [5]
        assert "seed" not in remote_fakes.control.calls["getimg"][0].json
        assert result.costs_usd == [pytest.approx(GETIMG_COST)]
        post, download = remote_fakes.control.calls["getimg"]
        assert post.path == "/v2/images/generations" and post.json["model"] == "flux-schnell"
        assert download.method == "GET" and download.path.startswith("/files/")

        remote_fakes.control.missing_result["getimg"] = True
        with pytest.raises(BackendInputError):
            await backend.generate([request_for("getimg", width=1024, height=1024)])
    finally:
        await backend.aclose()


async def test_getimg_upscale_and_face_fix(make: Make, remote_fakes: Any) -> None:
    backend = make("getimg")
    source = solid((200, 100))

    upscaled, cost = await backend.upscale(source, 4)
    assert upscaled.size == (800, 400) and upscaled.getpixel((0, 0)) == (10, 200, 30)
    assert cost == pytest.approx(GETIMG_COST)
    fixed, cost = await backend.face_fix(source)
    assert fixed.size == (200, 100) and cost == pytest.approx(GETIMG_COST)
    assert [call.json["model"] for call in remote_fakes.control.calls["getimg"]] == ["real-esrgan-4x", "gfpgan-v1-3"]


async def test_getimg_enhancement_refusals_make_no_call(make: Make, remote_fakes: Any) -> None:
    backend = make("getimg")

    with pytest.raises(InputError) as caught:
        await backend.upscale(solid((1100, 64)), 2)
    assert caught.value.param == "image"
    with pytest.raises(InputError) as caught:
        await backend.upscale(solid((64, 64)), 3)
    assert caught.value.param == "scale"
    with pytest.raises(InputError):
        await backend.face_fix(solid((64, 1025)))

    assert remote_fakes.control.calls["getimg"] == []


# --------------------------------------------------------------------------------------------------------- FAL


async def test_fal_sends_the_documented_fields(make: Make, remote_fakes: Any) -> None:
    backend = make("fal")

    await backend.generate([request_for("fal", negative_prompt="blurry", steps=20, guidance=4.0)])

    submit = generation_calls(remote_fakes, "fal")[0]
    assert submit.path == "/fal-ai/fast-sdxl"
    assert submit.json == {
        "prompt": "a red dragon",
        "negative_prompt": "blurry",
        "image_size": {"width": 520, "height": 392},
        "num_inference_steps": 20,
        "guidance_scale": 4.0,
        "seed": 7,
        "num_images": 1,
        "format": "png",
        "enable_safety_checker": False,
        "sync_mode": False,
    }
    status = [call for call in remote_fakes.control.calls["fal"] if call.path.endswith("/status")]
    assert status and all(call.query == "logs=1" for call in status)


async def test_fal_reports_queue_and_progress(make: Make, remote_fakes: Any) -> None:
    backend = make("fal")
    remote_fakes.control.fal_queue_s, remote_fakes.control.fal_progress_s = 0.3, 0.2
    steps: list[tuple[int, int]] = []

    await backend.generate(
        [request_for("fal", steps=20)], on_step=lambda step, total: steps.append((step, total)) or True
    )

    assert len(steps) >= 4  # at submit, then polled while IN_QUEUE and IN_PROGRESS
    assert steps[:-1] == [(0, 20)] * (len(steps) - 1) and steps[-1] == (20, 20)
    assert len([call for call in remote_fakes.control.calls["fal"] if call.path.endswith("/status")]) == len(steps) - 1


async def test_fal_batch_runs_its_jobs_together(make: Make, remote_fakes: Any) -> None:
    backend = make("fal")
    remote_fakes.control.fal_progress_s = 0.2
    requests = [request_for("fal", prompt=f"tavern {i}", seed=10 + i) for i in range(3)]
    steps: list[tuple[int, int]] = []

    result = await backend.generate(requests, on_step=lambda step, total: steps.append((step, total)) or True)

    for i, image in enumerate(result.images):
        assert_image(image, (520, 392), f"tavern {i}", 10 + i)
    assert remote_fakes.control.max_in_flight["fal"] == 3
    assert steps[-1] == (90, 90) and result.costs_usd == [None] * 3  # no price configured


async def test_fal_cancel_reaches_the_api(make: Make, remote_fakes: Any) -> None:
    backend = make("fal")
    remote_fakes.control.fal_queue_s = 5.0

    with pytest.raises(Cancelled):
        await backend.generate([request_for("fal")], on_step=lambda step, total: False)

    (cancel,) = generation_calls(remote_fakes, "fal", "PUT")
    assert cancel.path.endswith("/cancel")
    assert len(remote_fakes.control.cancelled) == 1 and remote_fakes.control.cancelled[0] in cancel.path


async def test_fal_cancel_mid_batch_cancels_every_job(make: Make, remote_fakes: Any) -> None:
    backend = make("fal")
    remote_fakes.control.fal_queue_s = 5.0

    def on_step(step: int, total: int) -> bool:
        # Stop once both jobs are being polled (a job still being submitted has no cancel_url yet).
        polled = {call.path for call in remote_fakes.control.calls["fal"] if call.path.endswith("/status")}
        return len(polled) < 2

    with pytest.raises(Cancelled):
        await backend.generate([request_for("fal", seed=i) for i in range(2)], on_step=on_step)

    assert len(remote_fakes.control.cancelled) == 2


@pytest.mark.parametrize(
    ("error_type", "raised"), [(None, BackendUnavailable), ("validation_error", BackendInputError)]
)
async def test_fal_completed_with_error(error_type: str | None, raised: type, make: Make, remote_fakes: Any) -> None:
    backend = make("fal")
    remote_fakes.control.fal_error, remote_fakes.control.fal_error_type = "runner crashed", error_type

    with pytest.raises(raised) as caught:
        await backend.generate([request_for("fal")])

    assert "runner crashed" in str(caught.value)
    assert len(generation_calls(remote_fakes, "fal")) == 1  # not resubmitted


async def test_fal_missing_result_is_an_input_error(make: Make, remote_fakes: Any) -> None:
    backend = make("fal")
    remote_fakes.control.missing_result["fal"] = True

    with pytest.raises(BackendInputError) as caught:
        await backend.generate([request_for("fal")])

    assert caught.value.status == 404


async def test_fal_validation_error_names_the_field(make: Make, remote_fakes: Any) -> None:
    backend = make("fal")
    remote_fakes.control.fail("fal", 422, body=error_body("fal", 422, param="image_size", message="bad size"))

    with pytest.raises(BackendInputError) as caught:
        await backend.generate([request_for("fal")])

    assert caught.value.param == "image_size"
    assert len(remote_fakes.control.calls["fal"]) == 1


async def test_fal_upscale_and_face_fix(make: Make, remote_fakes: Any) -> None:
    backend = make("fal")
    source = solid((64, 48))

    upscaled, cost = await backend.upscale(source, 2)
    assert upscaled.size == (128, 96) and upscaled.getpixel((5, 5)) == (10, 200, 30) and cost is None
    fixed, _ = await backend.face_fix(source)
    assert fixed.size == (64, 48) and fixed.getpixel((5, 5)) == (10, 200, 30)
    submits = [call.path for call in generation_calls(remote_fakes, "fal")]
    assert submits == ["/fal-ai/esrgan", "/fal-ai/codeformer"]


# ------------------------------------------------------------------------------------------------------ OpenAI


async def test_openai_sends_the_documented_fields(make: Make, remote_fakes: Any) -> None:
    backend = make("openai")

    result = await backend.generate([request_for("openai", seed=3, steps=80)])

    (call,) = generation_calls(remote_fakes, "openai")
    assert call.path == "/images/generations"
    assert call.json == {
        "model": "gpt-image-1",
        "prompt": "a red dragon",
        "n": 1,
        "size": "1024x1536",
        "output_format": "png",
    }
    assert result.seeds == [3]  # recorded, not honoured: the API takes no seed
    assert result.costs_usd == [None]


@pytest.mark.parametrize(
    ("model", "accepted", "refused"),
    [
        ("gpt-image-1", [(1024, 1024), (1536, 1024), (1024, 1536)], [(1024, 768), (1792, 1024)]),
        ("dall-e-3", [(1024, 1024), (1792, 1024), (1024, 1792)], [(1536, 1024), (512, 512)]),
        ("dall-e-2", [(256, 256), (512, 512), (1024, 1024)], [(1024, 1536), (768, 768)]),
        ("gpt-image-2", [(1280, 720), (2048, 2048), (1536, 512)], [(1288, 720), (1536, 496), (3840, 3840)]),
    ],
)
def test_openai_sizes_per_model(model: str, accepted: list[tuple[int, int]], refused: list[tuple[int, int]]) -> None:
    from pipelines.remote.openai import OpenAIBackend

    backend = OpenAIBackend.create("sk-x", model=model)
    for width, height in accepted:
        backend.check(request_for("openai", width=width, height=height))
    for width, height in refused:
        with pytest.raises(InputError) as caught:
            backend.check(request_for("openai", width=width, height=height))
        assert caught.value.param in ("width", "height") and f"openai ({model})" in caught.value.allowed


@pytest.mark.parametrize("model", ["dall-e-3", "dall-e-2"])
async def test_openai_dalle_has_no_img2img(model: str, make: Make, remote_fakes: Any) -> None:
    backend = make("openai", model=model)

    with pytest.raises(InputError) as caught:
        await backend.generate(
            [request_for("openai", width=1024, height=1024, mode="img2img", init_image=solid((8, 8)))]
        )

    assert caught.value.param == "mode"
    assert remote_fakes.control.calls["openai"] == []


async def test_openai_dalle_asks_for_b64_json(make: Make, remote_fakes: Any) -> None:
    backend = make("openai", model="dall-e-3")

    result = await backend.generate([request_for("openai", width=1792, height=1024, seed=4)])

    assert_image(result.images[0], (1792, 1024), "a red dragon", drawn_seed("openai", 4))
    assert generation_calls(remote_fakes, "openai")[0].json["response_format"] == "b64_json"


async def test_openai_insufficient_quota_is_a_budget_error_without_retry(make: Make, remote_fakes: Any) -> None:
    backend = make("openai")
    body = error_body("openai", 429, code="insufficient_quota")
    remote_fakes.control.fail("openai", 429, body=body, retry_after_ms=10)

    with pytest.raises(BackendBudgetError) as caught:
        await backend.generate([request_for("openai")])

    assert caught.value.code == "insufficient_quota"
    assert len(remote_fakes.control.calls["openai"]) == 1


async def test_openai_rate_limit_is_retried(make: Make, remote_fakes: Any) -> None:
    backend = make("openai")
    remote_fakes.control.fail("openai", 429, retry_after_ms=20)

    result = await backend.generate([request_for("openai")])

    assert result.images[0].size == (1024, 1536)
    first, second = remote_fakes.control.calls["openai"]
    assert second.at - first.at >= 0.02  # waited the retry-after-ms


async def test_openai_moderation_refusal_blames_the_prompt(make: Make, remote_fakes: Any) -> None:
    backend = make("openai")
    remote_fakes.control.fail("openai", 400)

    with pytest.raises(BackendInputError) as caught:
        await backend.generate([request_for("openai")])

    assert caught.value.param == "prompt" and caught.value.code == "moderation_blocked"
    assert len(remote_fakes.control.calls["openai"]) == 1


# ----------------------------------------------------------------------------------------------------- Runware


async def test_runware_batch_is_one_post(make: Make, remote_fakes: Any) -> None:
    backend = make("runware")
    requests = [
        request_for("runware", prompt="a red dragon", seed=0, scheduler="euler_a", negative_prompt="x"),
        request_for("runware", prompt="a blue castle", seed=42, negative_prompt="blurry"),
    ]

    result = await backend.generate(requests)

    assert_image(result.images[0], (640, 384), "a red dragon", 1)  # seed 0 is sent as 1
    assert_image(result.images[1], (640, 384), "a blue castle", 42)
    assert result.seeds == [1, 42] and result.costs_usd == [pytest.approx(RUNWARE_COST)] * 2
    (call,) = generation_calls(remote_fakes, "runware")
    first, second = call.json
    assert first["taskType"] == "imageInference" and first["taskUUID"] != second["taskUUID"]
    assert first["scheduler"] == "Euler a" and "negativePrompt" not in first
    assert second["negativePrompt"] == "blurry"
    assert {first["outputType"], first["outputFormat"], first["deliveryMethod"]} == {"base64Data", "PNG", "sync"}
    assert first["includeCost"] is True and first["model"] == "runware:101@1"


def _runware_errors(code: str, parameter: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "message": f"{code} happened"}
    if parameter:
        item["parameter"] = parameter
    return {"errors": [item]}


@pytest.mark.parametrize(
    ("code", "raised", "calls"),
    [
        ("insufficientCredits", BackendBudgetError, 1),
        ("invalidPositivePrompt", BackendInputError, 1),
        ("invalidApiKey", BackendAuthError, 1),
        ("timeoutProvider", BackendUnavailable, 3),  # transient: retried, then raised
    ],
)
async def test_runware_errors_in_a_200_body(code: str, raised: type, calls: int, make: Make, remote_fakes: Any) -> None:
    backend = make("runware")
    remote_fakes.control.fail("runware", 200, times=3, body=_runware_errors(code, "positivePrompt"))

    with pytest.raises(raised) as caught:
        await backend.generate([request_for("runware")])

    assert caught.value.code == code and caught.value.status == 200
    if raised is BackendInputError:
        assert caught.value.param == "positivePrompt"
    assert len(remote_fakes.control.calls["runware"]) == calls


async def test_runware_error_status_uses_the_code(make: Make, remote_fakes: Any) -> None:
    backend = make("runware")
    remote_fakes.control.fail("runware", 400, body=_runware_errors("insufficientCredits"))

    with pytest.raises(BackendBudgetError):
        await backend.generate([request_for("runware")])

    remote_fakes.control.fail("runware", 400, body=_runware_errors("invalidWidth", "width"))
    with pytest.raises(BackendInputError) as caught:
        await backend.generate([request_for("runware")])
    assert caught.value.param == "width" and caught.value.status == 400


async def test_runware_upscale(make: Make, remote_fakes: Any) -> None:
    backend = make("runware")

    upscaled, cost = await backend.upscale(solid((100, 60)), 2)

    assert upscaled.size == (200, 120) and upscaled.getpixel((3, 3)) == (10, 200, 30)
    assert cost == pytest.approx(RUNWARE_COST)
    (task,) = generation_calls(remote_fakes, "runware")[0].json
    assert task["taskType"] == "imageUpscale" and task["upscaleFactor"] == 2
    with pytest.raises(InputError):
        await backend.upscale(solid((1100, 60)), 4)  # past 4096 px
    with pytest.raises(InputError):
        await backend.face_fix(solid((64, 64)))  # not offered
    assert len(remote_fakes.control.calls["runware"]) == 1
