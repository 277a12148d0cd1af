"""The AUTOMATIC1111-compatible API (serve_app/api/compat/a1111.py) on the tiny model.

- The real ``webuiapi`` client from PyPI against the app served by uvicorn on a free port (txt2img, img2img,
  png_info, get_progress, interrupt).
- Replays of the start-up probes and generation requests of SillyTavern, Arcane Artifex (Foundry VTT) and the AIYA
  Discord bot, written from their published source (cited at each replay).
- Same seed, same pixels through the native ``/api/v2/images/generate`` and ``/sdapi/v1/txt2img`` (decoded pixels:
  the PNGs differ by their text chunk); ``info.seed`` is the seed used and matches the PNG's ``Seed:``.
- HTTP Basic with an API key as the password when auth is on.

Expected sizes and seeds are computed here from the request (A1111's rules: image i has seed + i, hires returns
hr_scale times the size), never read back from the code under test.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

from serve_app.config import JobsConfig, Settings
from tests.api.conftest import Local, create_api_lazily

webuiapi = pytest.importorskip("webuiapi")

SD = "/sdapi/v1"
FOUNDRY = "http://localhost:30000"


def _png(b64: str) -> Image.Image:
    assert not b64.startswith("data:"), "A1111 answers bare base64"
    image = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    assert image.format == "PNG"
    image.load()
    return image


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _seed_of(image: Image.Image) -> int:
    found = re.search(r"(?:^|, )Seed: (\d+)(?:,|$)", image.info["parameters"].splitlines()[-1])
    assert found, image.info["parameters"]
    return int(found.group(1))


def _ok(response: Any) -> Any:
    assert response.status_code == 200, (response.status_code, response.text[:500])
    return response.json()


# -- a real server for the real client -------------------------------------------------------------------------


class Served:
    def __init__(self, url: str, local: Local) -> None:
        self.url = url
        self.local = local
        self.port = int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def served(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app (its own :class:`Local`: edge, database, asset folder) under uvicorn in a thread."""
    jobs = JobsConfig(lease_s=10, heartbeat_s=1, max_queued=50, max_concurrent=8, backoff_base_s=0.1)
    data = tmp_path_factory.mktemp("a1111")
    local = Local(model_cache, data, jobs)
    local.settings = Settings(data_dir=str(data / "data"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_api_lazily(local), log_level="warning", access_log=False, lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", local)
    local.release()
    server.should_exit = True
    thread.join(30)
    sock.close()


@pytest.fixture
def api(served: Served) -> Any:
    return webuiapi.WebUIApi(host="127.0.0.1", port=served.port, sampler="Euler a", steps=3)


def test_webuiapi_txt2img_batches_and_png_info(api: Any) -> None:
    result = api.txt2img(prompt="a brass lantern", seed=7, width=64, height=72, cfg_scale=5, batch_size=2, n_iter=2)
    assert len(result.images) == 4
    assert all(image.size == (64, 72) for image in result.images)
    assert result.info["seed"] == 7 and result.info["all_seeds"] == [7, 8, 9, 10]  # A1111: image i gets seed + i
    assert [_seed_of(image) for image in result.images] == [7, 8, 9, 10]
    assert result.info["sampler_name"] == "Euler a" and result.info["steps"] == 3
    assert len(result.info["infotexts"]) == 4 and result.info["sd_model_name"]
    for key in (
        "prompt",
        "all_prompts",
        "negative_prompt",
        "width",
        "height",
        "cfg_scale",
        "batch_size",
        "job_timestamp",
    ):
        assert key in result.info, key
    assert result.info["width"] == 64 and result.info["height"] == 72 and result.info["batch_size"] == 2
    assert len({_pixels(image).tobytes() for image in result.images}) == 4  # four seeds, four images

    read = api.png_info(result.images[1])
    assert read.info == result.images[1].info["parameters"]  # webuiapi hands back the infotext string
    parsed = read.json["parameters"]
    assert parsed["Seed"] == "8" and parsed["Prompt"] == "a brass lantern" and parsed["Sampler"] == "Euler a"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("64", "72") and parsed["Steps"] == "3"


def test_webuiapi_random_seed_is_reported(api: Any) -> None:
    result = api.txt2img(prompt="a brass lantern", seed=-1, width=64, height=64, batch_size=2)
    seed = result.info["seed"]
    assert isinstance(seed, int) and seed >= 0
    assert result.info["all_seeds"] == [seed, seed + 1]
    assert [_seed_of(image) for image in result.images] == [seed, seed + 1]


def test_webuiapi_img2img(api: Any) -> None:
    start = Image.new("RGB", (64, 64), (200, 40, 40))
    result = api.img2img(images=[start], prompt="a red shield", seed=3, width=64, height=64, denoising_strength=0.5)
    assert len(result.images) == 1 and result.images[0].size == (64, 64)
    assert result.info["seed"] == 3 and _seed_of(result.images[0]) == 3
    assert result.info["denoising_strength"] == 0.5
    blue = api.img2img(
        images=[Image.new("RGB", (64, 64), (40, 40, 200))],
        prompt="a red shield",
        seed=3,
        width=64,
        height=64,
        denoising_strength=0.5,
    )
    assert not np.array_equal(_pixels(result.images[0]), _pixels(blue.images[0]))  # the start image counts


@pytest.mark.parametrize("stop", ["interrupt", "skip"])
def test_webuiapi_progress_and_interrupt(api: Any, served: Served, stop: str) -> None:
    idle = api.get_progress()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0
    prompt = f"a held lantern to {stop}"  # each case its own request: never the other's cached image
    served.local.hold([prompt])
    answer: dict[str, Any] = {}

    def generate() -> None:
        try:
            answer["result"] = api.txt2img(prompt=prompt, seed=5, width=64, height=64)
        except Exception as exc:  # reported below
            answer["error"] = exc

    thread = threading.Thread(target=generate)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            busy = api.get_progress()
            if busy["state"]["job_count"] == 1 and busy["progress"] > 0:
                break
            assert time.monotonic() < deadline, busy
            time.sleep(0.05)
        assert 0 < busy["progress"] < 1 and busy["state"]["sampling_steps"] == 3
        assert busy["state"]["sampling_step"] >= 1 and busy["state"]["job"]
        assert getattr(api, stop)() == {}  # skip cancels the running image, interrupt all of them
        thread.join(60)
    finally:
        served.local.release()
        thread.join(60)
    assert "error" not in answer, answer
    assert answer["result"].images == []  # interrupted before its image was made: 200 with what finished
    deadline = time.monotonic() + 30
    while api.get_progress()["state"]["job_count"] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.get_progress()["progress"] == 0


def test_webuiapi_start_up_lists(api: Any) -> None:
    assert "Euler a" in api.util_get_sampler_names() and "DPM++ 2M Karras" in api.util_get_sampler_names()
    models = api.util_get_model_names()
    assert len(models) == 1 and api.util_get_current_model() == models[0]
    assert api.has_adetailer  # /scripts lists it: alwayson_scripts.ADetailer runs the face pass
    assert api.get_cmd_flags()["gradio_auth"] is None


# -- the same pixels as the native API --------------------------------------------------------------------------


@pytest.mark.parametrize(("sampler", "scheduler"), [("Euler", "euler"), ("Euler a", "euler_a")])
def test_the_same_seed_gives_the_same_pixels_as_the_native_api(
    local: Local, tmp_path: Path, sampler: str, scheduler: str
) -> None:
    common = {"prompt": "a tower at dusk", "negative_prompt": "", "seed": 11, "width": 64, "height": 64, "steps": 3}
    # Two apps with their own stores and caches: neither answer can be the other's cached image.
    local.settings = Settings(data_dir=str(tmp_path / "native"))
    with TestClient(create_api_lazily(local)) as client:
        native = client.post("/api/v2/images/generate", json={**common, "guidance": 5.0, "scheduler": scheduler})
        assert native.status_code == 200, native.text
    local.settings = Settings(data_dir=str(tmp_path / "a1111"))
    with TestClient(create_api_lazily(local)) as client:
        body = _ok(client.post(f"{SD}/txt2img", json={**common, "cfg_scale": 5, "sampler_name": sampler}))
    image = _png(body["images"][0])
    assert np.array_equal(_pixels(image), _pixels(Image.open(io.BytesIO(native.content))))
    assert json.loads(body["info"])["sampler_name"] == sampler and _seed_of(image) == 11


# -- lenient requests, mapped settings ---------------------------------------------------------------------------


def test_lenient_bodies_and_sampler_fallback(client: TestClient) -> None:
    body = {
        "prompt": "a lantern",
        "seed": "-1",
        "width": "64",
        "height": 64.0,
        "steps": "3",
        "cfg_scale": "7.0",
        "sampler_name": "Heun++ Fancy Sampler",  # unknown: the default runs, and info says which
        "scheduler": "automatic",
        "styles": ["None"],
        "denoising_strength": None,
        "hr_checkpoint_name": None,
        "some_extension_key": {"nested": [1, 2]},
        "override_settings": {"sd_model_checkpoint": "whatever.safetensors"},
    }
    answer = _ok(client.post(f"{SD}/txt2img", json=body))
    info = json.loads(answer["info"])
    assert info["sampler_name"] == "Euler"  # the composer's default scheduler (euler) under its A1111 name
    assert info["cfg_scale"] == 7.0 and info["steps"] == 3 and info["styles"] == []
    assert info["seed"] >= 0 and info["seed"] == _seed_of(_png(answer["images"][0]))
    assert "some_extension_key" not in answer["parameters"]  # ignored, not kept


def test_a_prompt_beyond_latin_1_round_trips(client: TestClient) -> None:
    prompt = "a dragon, 龍, über the keep"
    answer = _ok(
        client.post(f"{SD}/txt2img", json={"prompt": prompt, "seed": 6, "width": 64, "height": 64, "steps": 2})
    )
    image = _png(answer["images"][0])
    assert image.info["parameters"].splitlines()[0] == prompt and _seed_of(image) == 6
    read = _ok(client.post(f"{SD}/png-info", json={"image": answer["images"][0]}))
    assert read["parameters"]["Prompt"] == prompt and read["parameters"]["Seed"] == "6"


def test_foundry_default_sampler_name_runs_euler(client: TestClient) -> None:
    # "Euler SGMUniform": A1111 1.9+ reads the trailing schedule type off an old-style name.
    answer = _ok(
        client.post(
            f"{SD}/txt2img",
            json={
                "prompt": "a map",
                "width": 64,
                "height": 64,
                "steps": 2,
                "seed": 1,
                "sampler_name": "Euler SGMUniform",
            },
        )
    )
    assert json.loads(answer["info"])["sampler_name"] == "Euler"
    karras = _ok(
        client.post(
            f"{SD}/txt2img",
            json={
                "prompt": "a map",
                "width": 64,
                "height": 64,
                "steps": 2,
                "seed": 1,
                "sampler_name": "DPM++ 2M",
                "scheduler": "Karras",
            },
        )
    )
    assert json.loads(karras["info"])["sampler_name"] == "DPM++ 2M Karras"


def test_enable_hr_returns_hr_scale_times_the_size(client: TestClient) -> None:
    body = {
        "prompt": "a keep",
        "seed": 2,
        "width": 72,
        "height": 64,
        "steps": 2,
        "enable_hr": True,
        "hr_scale": 2,
        "hr_upscaler": "Latent",
        "denoising_strength": 0.5,
        "hr_second_pass_steps": 2,
    }
    answer = _ok(client.post(f"{SD}/txt2img", json=body))
    image = _png(answer["images"][0])
    assert image.size == (144, 128)  # 2 x 72, 2 x 64
    assert "Hires upscale: 2.0" in image.info["parameters"] and _seed_of(image) == 2
    assert json.loads(answer["info"])["width"] == 72  # A1111 reports the first pass's size


def test_restore_faces_and_adetailer_are_accepted(client: TestClient) -> None:
    for extra in ({"restore_faces": True}, {"alwayson_scripts": {"ADetailer": {"args": [True, {"ad_model": "x"}]}}}):
        answer = _ok(
            client.post(
                f"{SD}/txt2img", json={"prompt": "a face", "seed": 4, "width": 64, "height": 64, "steps": 2, **extra}
            )
        )
        assert _png(answer["images"][0]).size == (64, 64)
        assert json.loads(answer["info"])["restore_faces"] is True


def test_styles_name_themes(client: TestClient) -> None:
    styles = _ok(client.get(f"{SD}/prompt-styles"))
    named = {s["name"]: s for s in styles}
    assert "ink-and-wash" in named and "{prompt}" in named["ink-and-wash"]["prompt"]
    answer = _ok(
        client.post(
            f"{SD}/txt2img",
            json={
                "prompt": "a heron",
                "seed": 1,
                "width": 64,
                "height": 64,
                "steps": 2,
                "styles": ["no such style", "ink-and-wash"],
            },
        )
    )
    info = json.loads(answer["info"])
    assert info["styles"] == ["ink-and-wash"] and info["prompt"] != "a heron"  # the theme rewrote the prompt
    assert "a heron" in info["prompt"]


def test_errors_keep_the_one_shape(client: TestClient) -> None:
    for body in ({"prompt": "x", "width": 3, "height": 64}, {"prompt": "x", "batch_size": 8, "n_iter": 8}):
        bad = client.post(f"{SD}/txt2img", json=body)
        assert bad.status_code == 422 and set(bad.json()) == {"error"}, bad.text
    bad = client.post(f"{SD}/img2img", json={"prompt": "x", "init_images": ["not base64!"]})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "init_images[0]"
    bad = client.post(f"{SD}/png-info", json={"image": base64.b64encode(b"not an image").decode()})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "image"
    assert _ok(client.post(f"{SD}/png-info", json={"image": ""})) == {"info": "", "items": {}, "parameters": {}}


# -- replays of the real clients ---------------------------------------------------------------------------------


def test_sillytavern_replay(client: TestClient) -> None:
    """SillyTavern's server side (SillyTavern/SillyTavern src/endpoints/stable-diffusion.js): /ping is GET
    options; the settings panel loads upscalers + latent-upscale-modes, sd-vae (and Forge's sd-modules, allowed to
    fail), samplers, schedulers, sd-models, options' sd_model_checkpoint; set-model POSTs options and polls progress
    until progress 0 and job_count 0; generate GETs options, then POSTs txt2img with the client's whole body
    (including its own url and auth keys) as built by public/scripts/extensions/stable-diffusion/index.js."""
    auth = {"Authorization": "Basic "}  # getBasicAuthHeader('') with no credentials configured
    assert client.get(f"{SD}/options", headers=auth).status_code == 200
    upscalers = [u["name"] for u in _ok(client.get(f"{SD}/upscalers", headers=auth))]
    latent = [u["name"] for u in _ok(client.get(f"{SD}/latent-upscale-modes", headers=auth))]
    assert upscalers[0] == "None" and latent
    assert isinstance(_ok(client.get(f"{SD}/sd-vae", headers=auth)), list)
    assert client.get(f"{SD}/sd-modules", headers=auth).status_code == 404  # Promise.allSettled: one may fail
    samplers = [s["name"] for s in _ok(client.get(f"{SD}/samplers", headers=auth))]
    assert [s["name"] for s in _ok(client.get(f"{SD}/schedulers", headers=auth))]
    models = [m["title"] for m in _ok(client.get(f"{SD}/sd-models", headers=auth))]
    assert _ok(client.get(f"{SD}/options", headers=auth))["sd_model_checkpoint"] in models
    assert client.post(f"{SD}/options", json={"sd_model_checkpoint": models[0]}, headers=auth).status_code == 200
    state = _ok(client.get(f"{SD}/progress", headers=auth))
    assert state["progress"] == 0.0 and state["state"]["job_count"] == 0  # set-model stops polling at once
    assert "forge_preset" not in _ok(client.get(f"{SD}/options", headers=auth))
    body = {
        "url": "http://127.0.0.1:8000",
        "auth": "",
        "prompt": "a tavern at night",
        "negative_prompt": "lowres",
        "sampler_name": samplers[0],
        "scheduler": "Automatic",
        "steps": 3,
        "cfg_scale": 7,
        "width": 64,
        "height": 64,
        "restore_faces": False,
        "enable_hr": False,
        "hr_upscaler": upscalers[0],
        "hr_scale": 2,
        "denoising_strength": 0.7,
        "hr_second_pass_steps": 0,
        "clip_skip": 1,
        "override_settings": {"CLIP_stop_at_last_layers": 1},
        "override_settings_restore_afterwards": True,
        "save_images": True,
        "send_images": True,
        "do_not_save_grid": False,
        "do_not_save_samples": False,
    }
    answer = client.post(f"{SD}/txt2img", json=body, headers={**auth, "Content-Type": "application/json"})
    data = _ok(answer)
    assert _png(data["images"][0]).size == (64, 64)
    assert json.loads(data["info"])["negative_prompt"] == "lowres"


@pytest.fixture
def foundry(local: Local, tmp_path: Path) -> Iterator[TestClient]:
    local.settings = Settings(data_dir=str(tmp_path / "data"))
    local.cors_origins = [FOUNDRY, "http://127.0.0.1:30000"]
    try:
        with TestClient(create_api_lazily(local)) as client:
            yield client
    finally:
        local.cors_origins = []


def test_arcane_artifex_replay(foundry: TestClient) -> None:
    """Arcane Artifex, a Foundry VTT module in the browser (zeedif/arcane-artifex scripts/localA1111ApiClient.js):
    checkStatus() is a HEAD on the base URL; getA1111EndpointSettings() GETs loras, prompt-styles, sd-models,
    samplers, upscalers and options; textToImg() POSTs /sdapi/v1/txt2img/ (trailing slash) with 'application/json;
    charset=utf-8', so the browser preflights that path; initProgressRequest() polls /progress."""
    origin = {"Origin": FOUNDRY}
    head = foundry.head("/", headers=origin)
    assert head.status_code == 200 and head.headers["access-control-allow-origin"] == FOUNDRY
    for path in ("loras", "prompt-styles", "sd-models", "samplers", "upscalers", "options"):
        answer = foundry.get(f"{SD}/{path}", headers=origin)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == FOUNDRY, path
    preflight = foundry.options(
        f"{SD}/txt2img/",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == FOUNDRY
    assert "POST" in preflight.headers["access-control-allow-methods"]
    body = {
        "prompt": "fantasy art, a goblin warband, undefined",
        "seed": -1,
        "height": 64,
        "width": 64,
        "negative_prompt": "blurry",
        "n_iter": 1,
        "restore_faces": False,
        "steps": 3,
        "sampler_name": "Euler SGMUniform",
        "enable_hr": False,
        "hr_upscaler": "Latent",
        "hr_scale": 2,
        "denoising_strength": 0.5,
        "hr_second_pass_steps": 0,
        "cfg_scale": 7,
    }
    raw = json.dumps(body).encode()
    answer = foundry.post(
        f"{SD}/txt2img/",
        content=raw,
        headers={**origin, "Content-Type": "application/json; charset=utf-8"},
        follow_redirects=False,
    )
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == FOUNDRY
    data = answer.json()
    assert _png(data["images"][0]).size == (64, 64)  # createImage(): "data:image/png;base64," + images[i]
    progress = foundry.get(f"{SD}/progress", headers=origin).json()
    assert progress["progress"] == 0 and progress["state"]["job_count"] == 0


def test_aiya_replay(client: TestClient) -> None:
    """The AIYA Discord bot (Kilvoctu/aiyabot core/settings.py startup_check() and populate_global_vars(),
    core/stablecog.py): GET cmd-flags (401 means --api-auth), HEAD the URL, cmd-flags' gradio_auth, POST /login with
    no body, the lists, GET /config whose components it reads outside its error handling (lora_names.remove('')),
    then txt2img with string numbers, styles ["None"], and png-info of every image with a data: prefix."""
    flags = client.get(f"{SD}/cmd-flags")
    assert flags.status_code == 200 and not flags.json()["gradio_auth"]
    assert client.head("/").status_code == 200
    assert client.post("/login").status_code == 200
    samplers = [s["name"] for s in _ok(client.get(f"{SD}/samplers"))]
    styles = {s["name"]: (s["prompt"], s["negative_prompt"]) for s in _ok(client.get(f"{SD}/prompt-styles"))}
    assert styles
    facefix = [s["name"] for s in _ok(client.get(f"{SD}/face-restorers"))]
    embeddings = _ok(client.get(f"{SD}/embeddings"))
    assert dict(embeddings["loaded"].items()) == {} and dict(embeddings["skipped"].items()) == {}
    assert [h["name"] for h in _ok(client.get(f"{SD}/hypernetworks"))] == []
    assert [u["name"] for u in _ok(client.get(f"{SD}/upscalers"))]
    models = _ok(client.get(f"{SD}/sd-models"))
    assert {"title", "model_name", "hash", "filename"} <= set(models[0])
    lora_names: list[str] = []
    hires_names: list[str] = []
    for c in _ok(client.get("/config"))["components"]:
        if c["props"]["elem_id"] == "setting_sd_lora":
            lora_names = c["props"]["choices"]
        if c["props"]["elem_id"] == "txt2img_hr_upscaler":
            hires_names = c["props"]["choices"]
    lora_names.remove("")  # raises in AIYA if the empty choice is missing
    assert hires_names and facefix
    payload = {
        "prompt": "a wizard",
        "negative_prompt": "",
        "steps": 4,
        "width": 64,
        "height": 64,
        "cfg_scale": "7.0",
        "sampler_index": samplers[0],
        "seed": -1,
        "seed_resize_from_h": 0,
        "seed_resize_from_w": 0,
        "denoising_strength": None,
        "n_iter": 1,
        "batch_size": 2,
        "styles": ["None"],
        "enable_hr": True,
        "hr_upscaler": hires_names[0],
        "hr_scale": 1,
        "hr_second_pass_steps": 4 / 2,  # int(steps)/2: a float
        "override_settings": {"CLIP_stop_at_last_layers": 1},
    }
    payload["denoising_strength"] = "0.75"  # the bot's template keeps strength as a string
    assert client.post("/login").status_code == 200
    data = _ok(client.post(f"{SD}/txt2img", json=payload))
    info = json.loads(data["info"])
    assert len(data["images"]) == 2 and info["all_seeds"] == [info["seed"], info["seed"] + 1] and info["seed"] >= 0
    for i, image in enumerate(data["images"]):
        assert _png(image.split(",", 1)[0]).size == (64, 64)  # hr_scale 1: the same size, repainted
        read = _ok(client.post(f"{SD}/png-info", json={"image": "data:image/png;base64," + image}))
        assert f"Seed: {info['seed'] + i}," in read["info"] and read["parameters"]["Seed"] == str(info["seed"] + i)


# -- auth -----------------------------------------------------------------------------------------------------------


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_with_a_key(keyed: tuple[TestClient, Any]) -> None:
    client, keys = keyed
    key, _ = keys.make(["images:generate", "images:read"])
    assert client.get(f"{SD}/cmd-flags").status_code == 401  # how AIYA detects --api-auth
    assert client.get(f"{SD}/cmd-flags", headers={"Authorization": "Basic "}).status_code == 401
    assert client.get(f"{SD}/cmd-flags", headers=_basic("anyone", "wrong")).status_code == 401
    flags = _ok(client.get(f"{SD}/cmd-flags", headers=_basic("anyone", key)))
    assert flags["limner_auth"] is True
    assert client.head("/").status_code == 200 and client.get("/config").status_code == 200  # probed before auth
    assert client.post("/login").status_code == 200
    body = {"prompt": "a keyed lantern", "seed": 9, "width": 64, "height": 64, "steps": 2}
    assert client.post(f"{SD}/txt2img", json=body).status_code == 401
    data = _ok(client.post(f"{SD}/txt2img", json=body, headers=_basic("", key)))
    assert _seed_of(_png(data["images"][0])) == 9
    progress = _ok(client.get(f"{SD}/progress", headers=_basic("", key)))
    assert progress["state"]["job_count"] == 0
    reader, _ = keys.make(["images:read"])
    assert client.post(f"{SD}/txt2img", json=body, headers=_basic("", reader)).status_code == 403


def test_every_route_answers_with_and_without_a_trailing_slash(client: TestClient) -> None:
    for path in (
        "options",
        "sd-models",
        "samplers",
        "schedulers",
        "upscalers",
        "latent-upscale-modes",
        "sd-vae",
        "prompt-styles",
        "loras",
        "face-restorers",
        "embeddings",
        "hypernetworks",
        "cmd-flags",
        "scripts",
        "progress",
    ):
        for url in (f"{SD}/{path}", f"{SD}/{path}/"):
            answer = client.get(url, follow_redirects=False)
            assert answer.status_code == 200 and answer.headers["content-type"] == "application/json", url
    for path in ("interrupt", "skip", "options"):
        for url in (f"{SD}/{path}", f"{SD}/{path}/"):
            assert client.post(url, follow_redirects=False).json() == {}, url
    assert client.get("/config/", follow_redirects=False).status_code == 200


def test_progress_is_per_tenant_with_keys(keyed: tuple[TestClient, Any], local: Local) -> None:
    client, keys = keyed
    mine, _ = keys.make(["images:generate", "images:read"], tenant="guild-a")
    theirs, _ = keys.make(["images:read"], tenant="guild-b")
    local.hold(["a tenant's lantern"])
    try:
        body = {"prompt": "a tenant's lantern", "width": 64, "height": 64, "steps": 3}
        made = client.post("/api/v2/images/jobs", json=body, headers={"X-API-Key": mine})
        assert made.status_code == 202, made.text
        deadline = time.monotonic() + 60
        while (seen := _ok(client.get(f"{SD}/progress", headers=_basic("", mine))))["progress"] == 0:
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        assert seen["state"]["job_count"] == 1 and 0 < seen["progress"] < 1
        other = _ok(client.get(f"{SD}/progress", headers=_basic("", theirs)))
        assert other["state"]["job_count"] == 0 and other["progress"] == 0  # another tenant's job is not theirs
    finally:
        local.release()
