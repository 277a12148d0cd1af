"""Upscale, face fix and restyle through HTTP on the tiny model: each a job whose result is a derived version, the
hires tiles batched on the generator, faces re-painted inside their boxes only, an `enhance` recipe on a portrait,
and bad parameters as 422s naming the field."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.conftest import Local

IMAGES = "/api/v2/images"


def _generate(client: TestClient, prompt: str, seed: int, size: int = 64, **extra: Any) -> str:
    r = client.post(
        f"{IMAGES}/generate", json={"prompt": prompt, "seed": seed, "width": size, "height": size, "steps": 2, **extra}
    )
    assert r.status_code == 200, r.text
    return r.headers["x-image-id"]


def _job(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"{path}?wait=180", json=body)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    return job


def _pixels(client: TestClient, image_id: str) -> np.ndarray:
    r = client.get(f"{IMAGES}/{image_id}/file")
    assert r.status_code == 200
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)


def _upload(client: TestClient, image: Image.Image) -> str:
    data = io.BytesIO()
    image.save(data, format="PNG")
    r = client.post(f"{IMAGES}/uploads", content=data.getvalue())
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def test_a_lanczos_upscale_is_a_derived_version_of_twice_the_size(client: TestClient) -> None:
    source = _generate(client, "a stone tower", 1)
    job = _job(client, f"{IMAGES}/{source}/upscale", {"scale": 2, "method": "lanczos"})
    (new_id,) = job["result"]["images"]
    image = client.get(f"{IMAGES}/{new_id}").json()
    assert image["parent_id"] == source and image["version"] == 2 and image["kind"] == "upscale"
    assert (image["width"], image["height"]) == (128, 128)
    # Independent Lanczos of the source: the stored result is PIL's Lanczos of the same pixels.
    original = Image.open(io.BytesIO(client.get(f"{IMAGES}/{source}/file").content)).convert("RGB")
    expected = np.asarray(original.resize((128, 128), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(_pixels(client, new_id) - expected).max() <= 1
    versions = [v["id"] for v in client.get(f"{IMAGES}/{source}/versions").json()]
    assert source in versions and new_id in versions


def test_a_hires_upscale_repaints_batched_tiles_and_differs_from_lanczos(client: TestClient, local: Local) -> None:
    source = _generate(client, "a red dragon", 2)
    before = len(local.batches)
    hires = _job(
        client, f"{IMAGES}/{source}/upscale", {"scale": 2, "method": "hires", "tile": 64, "overlap": 16, "denoise": 0.3}
    )
    data = hires["result"]["data"]
    assert data["method"] == "hires" and data["size"] == [128, 128] and data["tiles"] > 1
    assert local.batches[before:] == [data["tiles"]]  # every tile handed to the generator at once
    lanczos = _job(client, f"{IMAGES}/{source}/upscale", {"scale": 2})
    a, b = _pixels(client, hires["result"]["images"][0]), _pixels(client, lanczos["result"]["images"][0])
    assert a.shape == b.shape == (128, 128, 3)
    assert np.abs(a - b).mean() > 1.0  # the second pass re-painted it


def test_a_model_upscale_runs_the_built_in_network(client: TestClient) -> None:
    source = _generate(client, "a goblin", 3)
    job = _job(client, f"{IMAGES}/{source}/upscale", {"scale": 2, "method": "model", "tile": 64, "overlap": 8})
    image = client.get(f"{IMAGES}/{job['result']['images'][0]}").json()
    assert (image["width"], image["height"]) == (128, 128) and image["parent_id"] == source


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"scale": 5}, "scale"),
        ({"scale": 0.5}, "scale"),
        ({"scale": 4, "method": "lanczos"}, None),  # 256 x 256: within the test config's 1024 x 1024 limit
        ({"method": "bicubic"}, "method"),
        ({"method": "hires", "denoise": 0}, "denoise"),
        ({"tile": 30}, "tile"),
    ],
)
def test_bad_upscale_settings_are_422s_naming_the_field(
    client: TestClient, body: dict[str, Any], param: str | None
) -> None:
    source = _generate(client, "a small map", 4)
    r = client.post(f"{IMAGES}/{source}/upscale", json=body)
    if param is None:
        assert r.status_code == 202, r.text
        return
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param


def test_an_upscale_past_the_pixel_limit_is_a_422_naming_scale(client: TestClient) -> None:
    big = _upload(client, Image.new("RGB", (400, 400), "#808080"))
    r = client.post(f"{IMAGES}/{big}/upscale", json={"scale": 3})  # 1200 x 1200 > the test config's 1024 x 1024
    assert r.status_code == 422 and r.json()["error"]["param"] == "scale"


def test_an_unknown_image_is_a_404(client: TestClient) -> None:
    r = client.post(f"{IMAGES}/00000000-0000-0000-0000-000000000000/upscale", json={"scale": 2})
    assert r.status_code == 404


def test_face_fix_repaints_inside_the_padded_boxes_only(client: TestClient) -> None:
    skdata = pytest.importorskip("skimage.data")
    photo = Image.fromarray(skdata.astronaut()).resize((256, 256))
    source = _upload(client, photo)
    job = _job(client, f"{IMAGES}/{source}/face-fix", {"strength": 0.5, "padding": 0.2})
    data = job["result"]["data"]
    assert data["faces"], data  # the astronaut's face was found
    before, after = _pixels(client, source), _pixels(client, job["result"]["images"][0])
    inside = np.zeros(before.shape[:2], bool)
    for left, top, right, bottom in data["faces"]:  # the detector's boxes; padding only grows them
        w, h = right - left, bottom - top
        pad = round(0.2 * max(w, h)) + 2
        inside[max(0, top - pad) : bottom + pad, max(0, left - pad) : right + pad] = True
    assert (before[~inside] == after[~inside]).all()  # nothing outside the padded boxes changed
    assert np.abs(before[inside] - after[inside]).mean() > 1.0  # the faces were re-painted


def test_face_fix_of_an_image_without_faces_keeps_every_pixel(client: TestClient) -> None:
    source = _upload(client, Image.new("RGB", (96, 96), "#3366aa"))
    job = _job(client, f"{IMAGES}/{source}/face-fix", {})
    assert job["result"]["data"]["faces"] == []
    assert (_pixels(client, job["result"]["images"][0]) == _pixels(client, source)).all()


def test_restyle_records_the_theme_and_its_version(client: TestClient) -> None:
    theme = {"name": "restyle-ink", "fragments": ["ink and wash"], "palette": ["#111111"]}
    assert client.post(f"{IMAGES}/styles", json=theme).status_code == 201
    assert client.put(f"{IMAGES}/styles/restyle-ink", json={"fragments": ["sumi ink"]}).status_code == 200  # v2
    source = _generate(client, "a castle on a hill", 5)
    job = _job(client, f"{IMAGES}/{source}/restyle", {"theme": "restyle-ink", "strength": 0.7, "keep_structure": True})
    image = client.get(f"{IMAGES}/{job['result']['images'][0]}").json()
    assert image["parent_id"] == source and image["kind"] == "restyle"
    assert job["result"]["data"]["theme"]["name"] == "restyle-ink" and job["result"]["data"]["theme"]["version"] == 2
    assert image["theme_id"] == job["result"]["data"]["theme"]["id"]
    assert "sumi ink" in job["result"]["data"]["prompt"]
    assert (image["width"], image["height"]) == (64, 64)


def test_restyle_into_an_unknown_theme_is_refused_at_once(client: TestClient) -> None:
    source = _generate(client, "a bridge", 6)
    r = client.post(f"{IMAGES}/{source}/restyle", json={"theme": "no-such-theme"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "theme"


def test_an_enhance_recipe_on_a_portrait_keeps_every_step_as_a_version_in_order(client: TestClient) -> None:
    body = {
        "character": {"name": "Mira", "role": "ranger"},
        "seed": 77,
        "width": 64,
        "height": 64,
        "enhance": [{"op": "face-fix"}, {"op": "upscale", "scale": 2}],
    }
    job = _job(client, f"{IMAGES}/portraits", body)
    (variation,) = job["result"]["data"]["variations"]
    generated, fixed, upscaled = variation["versions"]
    assert job["image_id"] == upscaled == variation["image_id"]  # the main image is the last step's
    chain = [client.get(f"{IMAGES}/{i}").json() for i in (generated, fixed, upscaled)]
    assert [c["kind"] for c in chain] == ["portrait", "face_fix", "upscale"]
    assert chain[1]["parent_id"] == generated and chain[2]["parent_id"] == fixed
    assert [c["version"] for c in chain] == [1, 2, 3]
    assert (chain[2]["width"], chain[2]["height"]) == (128, 128)


def test_a_bad_recipe_step_names_its_index(client: TestClient) -> None:
    body = {
        "prompt": "a lighthouse",
        "width": 64,
        "height": 64,
        "enhance": [{"op": "upscale"}, {"op": "upscale", "scale": 9}],
    }
    r = client.post(f"{IMAGES}/jobs", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == "enhance[1].scale"


def test_a_generate_recipe_reports_progress_over_the_whole_recipe(client: TestClient) -> None:
    body = {
        "prompt": "a harbour",
        "width": 64,
        "height": 64,
        "steps": 2,
        "seed": 8,
        "enhance": [{"op": "upscale", "method": "hires", "tile": 64, "overlap": 16}],
    }
    job = _job(client, f"{IMAGES}/jobs", body)
    assert job["progress"] == pytest.approx(1.0)
    original, upscaled = job["result"]["data"]["versions"]
    assert job["image_id"] == upscaled and job["result"]["images"] == [upscaled, original]


def test_an_upload_that_is_not_an_image_is_a_422(client: TestClient) -> None:
    r = client.post(f"{IMAGES}/uploads", content=b"not an image")
    assert r.status_code == 422 and r.json()["error"]["param"] == "body"


def test_face_fix_with_the_restorer_is_refused_when_none_is_configured(client: TestClient) -> None:
    source = _upload(client, Image.new("RGB", (64, 64), "#aa6633"))
    r = client.post(f"{IMAGES}/{source}/face-fix", json={"restorer": True})
    assert r.status_code == 422 and r.json()["error"]["param"] == "restorer"
