"""Tactical maps end to end on the tiny model through HTTP: the job, the map it records, its UVTT export read back by
an independent parser, editing its overlay, walls and doors in movement, and UVTT import of a hand-made file."""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

IMAGES = "/api/v2/images"
MAPS = f"{IMAGES}/maps"
TACTICAL = f"{MAPS}/tactical"
RED = "#ff0000"

# An 8 x 6 map at 32 px: a wall across x = 4 from y = 0 to y = 6 with a door in it at y 2..3 and a window at 4..5.
WALLS = [
    [{"x": 4, "y": 0}, {"x": 4, "y": 2}],
    [{"x": 4, "y": 3}, {"x": 4, "y": 4}],
    [{"x": 4, "y": 5}, {"x": 4, "y": 6}],
]
DOOR = {"a": {"x": 4, "y": 2}, "b": {"x": 4, "y": 3}}
WINDOW = {"a": {"x": 4, "y": 4}, "b": {"x": 4, "y": 5}}


def _body(**change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "grid": {"type": "square", "cols": 8, "rows": 6, "cell_px": 32},
        "prompt": "a crypt with a flooded corridor",
        "seed": 11,
        "terrain": {
            "walls": WALLS,
            "doors": [DOOR],
            "windows": [WINDOW],
            "areas": [{"kind": "water", "cells": [[1, 4], [2, 4]]}],
            "features": [{"kind": "pillar", "cell": [6, 1]}, {"kind": "chest", "cell": [7, 5]}],
        },
        "lights": [{"position": {"x": 2.5, "y": 1.5}, "range": 4, "color": "#ffcc88", "intensity": 0.8}],
        "tokens": [{"id": "hero", "cell": [1, 1], "color": RED, "label": "H"}],
        "templates": [{"id": "burst", "shape": "sphere", "origin": {"x": 6, "y": 4}, "distance_ft": 5}],
        "paths": [{"id": "walk", "token": "hero", "waypoints": [[1, 1], [3, 4]]}],
        "movement": [{"id": "reach", "token": "hero", "speed_ft": 15}],
    }
    body.update(change)
    return body


def _job(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"{TACTICAL}?wait=180", json=body)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    return job


def _image(client: TestClient, image_id: str) -> Image.Image:
    r = client.get(f"{IMAGES}/{image_id}/file")
    assert r.status_code == 200
    return Image.open(io.BytesIO(r.content))


@pytest.fixture(scope="module")
def made(client_module: TestClient) -> dict[str, Any]:
    return _job(client_module, _body())


@pytest.fixture(scope="module")
def client_module(local: Any) -> Any:
    from tests.api.conftest import create_api_lazily

    local.ready = True
    with TestClient(create_api_lazily(local)) as c:
        yield c


def test_a_tactical_map_job_records_the_art_the_background_and_the_render(
    client_module: TestClient, made: dict[str, Any]
) -> None:
    client = client_module
    data = made["result"]["data"]
    map_id = data["map_id"]
    assert data["links"] == {
        "self": f"{MAPS}/{map_id}",
        "uvtt": f"{MAPS}/{map_id}/export.uvtt",
        "dd2vtt": f"{MAPS}/{map_id}/export.dd2vtt",
        "overlay": f"{MAPS}/{map_id}/overlay",
    }
    assert made["image_id"] == data["render_image_id"]
    background = client.get(f"{IMAGES}/{data['background_image_id']}").json()
    render = client.get(f"{IMAGES}/{data['render_image_id']}").json()
    art = client.get(f"{IMAGES}/{data['art_image_id']}").json()
    assert (background["width"], background["height"]) == (8 * 32, 6 * 32)  # exactly cols x cell_px
    assert (render["width"], render["height"]) == (8 * 32, 6 * 32)
    assert render["parent_id"] == background["id"] and background["parent_id"] == art["id"]
    assert data["generated_size"][0] % 8 == 0 and data["generated_size"][1] % 8 == 0
    ratio = data["generated_size"][0] / data["generated_size"][1]
    assert ratio == pytest.approx(8 / 6, rel=0.15)
    pixels = np.asarray(_image(client, data["render_image_id"]).convert("RGB"))
    # The hero's disc, where it stands (a third of a cell left of its centre: the label "H" sits in the middle).
    assert tuple(pixels[int(1.5 * 32), int(1.2 * 32)]) == (255, 0, 0)
    assert "top-down" in data["prompt"] and "crypt" in data["prompt"]


def test_a_tactical_maps_document_is_the_one_its_routes_declare(
    client_module: TestClient, made: dict[str, Any]
) -> None:
    """The map routes declared :class:`OverlayResponse`; a map's document also names the job that made it, and a
    campaign map's is another document altogether (tests/api/test_campaign.py): a tactical map answers exactly
    :class:`MapResponse` now."""
    from serve_app.api.protocol.overlays import MapResponse

    map_id = made["result"]["data"]["map_id"]
    for suffix in ("", "/overlay"):
        r = client_module.get(f"{MAPS}/{map_id}{suffix}")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert set(doc) == set(MapResponse.model_fields), doc.keys()
        assert MapResponse.model_validate(doc).job_id == made["id"]


def test_walls_closed_doors_and_windows_block_movement_open_doors_do_not(client_module: TestClient) -> None:
    client = client_module
    grid = {"type": "square", "cols": 8, "rows": 6, "cell_px": 32}
    tokens = [{"id": "hero", "cell": [3, 2]}]
    query = [{"id": "m", "token": "hero", "speed_ft": 5}]
    closed = {"walls": WALLS, "doors": [DOOR], "windows": [WINDOW]}
    r = client.post(
        f"{IMAGES}/overlays/geometry", json={"grid": grid, "terrain": closed, "tokens": tokens, "movement": query}
    )
    reach = {tuple(e["cell"]) for e in r.json()["movement"][0]["reachable"]}
    # One step from (3, 2) under 5-5-5: the 8 neighbours, less the three beyond the wall at x = 4 (the door is shut,
    # and the diagonal steps cross the wall line).
    assert reach == {(2, 1), (3, 1), (2, 2), (2, 3), (3, 3)}
    opened = {**closed, "doors": [{**DOOR, "closed": False}]}
    r = client.post(
        f"{IMAGES}/overlays/geometry", json={"grid": grid, "terrain": opened, "tokens": tokens, "movement": query}
    )
    reach = {tuple(e["cell"]) for e in r.json()["movement"][0]["reachable"]}
    assert (4, 2) in reach  # straight through the open door


def test_a_path_that_cannot_get_past_the_walls_is_a_422_naming_the_waypoint(client_module: TestClient) -> None:
    sealed = {"walls": [[{"x": 4, "y": 0}, {"x": 4, "y": 6}]]}
    body = _body(terrain=sealed, paths=[{"id": "walk", "waypoints": [[1, 1], [6, 2]]}])
    r = client_module.post(TACTICAL, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == "paths[0].waypoints[1]"


def test_difficult_water_doubles_the_cost_of_entering_it(client_module: TestClient) -> None:
    body = {
        "grid": {"type": "square", "cols": 8, "rows": 6, "cell_px": 32},
        "terrain": {"areas": [{"kind": "water", "cells": [[2, 4]]}]},
        "tokens": [{"id": "hero", "cell": [1, 4]}],
        "movement": [{"id": "m", "token": "hero", "speed_ft": 30}],
    }
    r = client_module.post(f"{IMAGES}/overlays/geometry", json=body)
    costs = {tuple(e["cell"]): e["cost_ft"] for e in r.json()["movement"][0]["reachable"]}
    assert costs[(0, 4)] == pytest.approx(5.0)
    assert costs[(2, 4)] == pytest.approx(10.0)  # one step into water: 5 ft, doubled


def test_the_uvtt_export_reads_back_in_cells_radians_and_argb(client_module: TestClient, made: dict[str, Any]) -> None:
    client = client_module
    data = made["result"]["data"]
    r = client.get(data["links"]["uvtt"])
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].endswith('.uvtt"')
    doc = json.loads(r.content)
    assert doc["format"] == pytest.approx(0.3)
    resolution = doc["resolution"]
    assert resolution["map_origin"] == {"x": 0, "y": 0}
    assert resolution["map_size"] == {"x": 8, "y": 6} and resolution["pixels_per_grid"] == 32
    image = Image.open(io.BytesIO(base64.b64decode(doc["image"])))
    assert image.size == (8 * 32, 6 * 32)  # exactly map_size x pixels_per_grid
    walls = [[(p["x"], p["y"]) for p in line] for line in doc["line_of_sight"]]
    assert [(4, 0), (4, 2)] in walls  # vertices in cells, not pixels
    portals = doc["portals"]
    door = next(p for p in portals if p["position"] == {"x": 4, "y": 2.5})
    a, b = door["bounds"]
    assert door["rotation"] == pytest.approx(math.atan2(b["y"] - a["y"], b["x"] - a["x"]))  # radians
    assert door["closed"] is True
    window = next(p for p in portals if p["position"] == {"x": 4, "y": 4.5})
    assert window["closed"] is False
    (light,) = doc["lights"]
    assert light["color"] == "ffffcc88" and light["range"] == 4 and light["position"] == {"x": 2.5, "y": 1.5}
    assert doc["objects_line_of_sight"]  # the pillar blocks sight; the chest does not
    assert len(doc["objects_line_of_sight"]) == 1
    assert set(doc["environment"]) == {"baked_lighting", "ambient_light"}
    same = client.get(data["links"]["dd2vtt"])
    assert same.status_code == 200 and json.loads(same.content) == doc
    assert same.headers["content-disposition"].endswith('.dd2vtt"')


def test_editing_the_maps_overlay_redraws_the_same_background(client_module: TestClient, made: dict[str, Any]) -> None:
    client = client_module
    data = made["result"]["data"]
    doc = client.get(data["links"]["overlay"]).json()
    assert doc["kind"] == "tactical_map" and doc["background_image_id"] == data["background_image_id"]
    spec = doc["spec"]
    spec["tokens"] = [{"id": "hero", "cell": [2, 2], "color": "#0000ff"}]
    spec["templates"].append({"id": "fireball", "shape": "sphere", "origin": {"x": 2, "y": 2}, "distance_ft": 5})
    put = client.put(data["links"]["overlay"], json=spec, headers={"If-Match": f'"{doc["version"]}"'})
    assert put.status_code == 200, put.text
    v2 = put.json()
    assert v2["version"] == doc["version"] + 1 and v2["background_image_id"] == data["background_image_id"]
    pixels = np.asarray(_image(client, v2["image_id"]).convert("RGB"))
    assert tuple(pixels[int(2.5 * 32), int(2.5 * 32)]) == (0, 0, 255)
    assert {t["id"] for t in v2["geometry"]["templates"]} == {"burst", "fireball"}
    assert client.get(data["links"]["self"]).json()["version"] == v2["version"]


def test_a_hex_map_has_no_uvtt_export(client_module: TestClient) -> None:
    body = _body(
        grid={"type": "hex", "cols": 6, "rows": 5, "size_px": 16, "orientation": "flat", "offset": "even-q"},
        terrain=None,
        lights=[],
        templates=[],
        paths=[],
        movement=[],
        tokens=[{"id": "hero", "cell": [1, 1]}],
    )
    body.pop("terrain")
    job = _job(client_module, body)
    r = client_module.get(job["result"]["data"]["links"]["uvtt"])
    assert r.status_code == 422 and r.json()["error"]["param"] == "grid.type"


def test_a_hand_made_dd2vtt_imports_into_a_map_spec(client_module: TestClient) -> None:
    png = io.BytesIO()
    Image.new("RGB", (4 * 10, 3 * 10), "#336699").save(png, format="PNG")
    file = {
        "format": 0.3,
        "software": "hand",  # unknown keys are ignored
        "resolution": {"map_origin": {"x": 2, "y": 1}, "map_size": {"x": 4, "y": 3}, "pixels_per_grid": 10},
        "line_of_sight": [[{"x": 2, "y": 1}, {"x": 6, "y": 1}, {"x": 6, "y": 4}]],
        "objects_line_of_sight": [],
        "portals": [
            {
                "position": {"x": 4, "y": 4},
                "bounds": [{"x": 3.5, "y": 4}, {"x": 4.5, "y": 4}],
                "rotation": 0,
                "closed": True,
                "freestanding": False,
            }
        ],
        "environment": {"baked_lighting": True, "ambient_light": "ffffffff"},
        "lights": [{"position": {"x": 3, "y": 2}, "range": 2, "intensity": 1, "color": "ff00ff00", "shadows": True}],
        "image": base64.b64encode(png.getvalue()).decode(),
    }
    r = client_module.post(f"{MAPS}/import", content=json.dumps(file))
    assert r.status_code == 200, r.text
    out = r.json()
    spec = out["spec"]
    assert spec["grid"]["cols"] == 4 and spec["grid"]["rows"] == 3 and spec["grid"]["cell_px"] == 10
    wall = spec["terrain"]["walls"][0]
    assert wall == [{"x": 0, "y": 0}, {"x": 4, "y": 0}, {"x": 4, "y": 3}]  # map_origin subtracted
    door = spec["terrain"]["doors"][0]
    assert {door["a"]["x"], door["b"]["x"]} == {1.5, 2.5} and door["a"]["y"] == 3
    assert spec["lights"][0]["position"] == {"x": 1, "y": 1}
    stored = client_module.get(f"{IMAGES}/{out['image_id']}").json()
    assert (stored["width"], stored["height"]) == (40, 30)
    # The imported spec is a valid map: measure it as it is.
    assert client_module.post(f"{IMAGES}/overlays/geometry", json=spec).status_code == 200


def test_a_broken_uvtt_file_is_a_422_naming_the_key(client_module: TestClient) -> None:
    r = client_module.post(f"{MAPS}/import", content=json.dumps({"format": 0.3, "line_of_sight": []}))
    assert r.status_code == 422
    assert r.json()["error"]["param"].startswith("resolution")


def test_enhance_steps_run_on_the_art_before_it_is_fitted_and_drawn_over(client_module: TestClient) -> None:
    client = client_module
    job = _job(client, _body(seed=12, enhance=[{"op": "upscale", "scale": 2, "method": "lanczos"}]))
    data = job["result"]["data"]
    art = client.get(f"{IMAGES}/{data['art_image_id']}").json()
    (step,) = data["enhance"]
    upscaled = client.get(f"{IMAGES}/{step['image_id']}").json()
    background = client.get(f"{IMAGES}/{data['background_image_id']}").json()
    # The chain: art -> its upscale -> the background fitted from the upscale -> the render drawn over it.
    assert step["source_id"] == art["id"] and upscaled["parent_id"] == art["id"]
    assert (upscaled["width"], upscaled["height"]) == (2 * art["width"], 2 * art["height"])
    assert background["parent_id"] == upscaled["id"] and background["version"] == upscaled["version"] + 1
    assert (background["width"], background["height"]) == (8 * 32, 6 * 32)
    pixels = np.asarray(_image(client, data["render_image_id"]).convert("RGB"))
    assert tuple(pixels[int(1.5 * 32), int(1.2 * 32)]) == (255, 0, 0)  # the overlay is drawn after the steps


def test_a_bad_enhance_step_on_a_map_is_a_422_naming_it(client_module: TestClient) -> None:
    r = client_module.post(TACTICAL, json=_body(enhance=[{"op": "upscale", "scale": 2}, {"op": "restyle"}]))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"].startswith("enhance[1]")
