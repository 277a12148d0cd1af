"""Overlays through HTTP: geometry as data, drawing on an image or a plain canvas, versions, errors naming the
field. Expected cells and pixels are computed here from the rules (TTRPG_RULES.md), not by the code under test."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.conftest import Local

IMAGES = "/api/v2/images"
GEOMETRY = f"{IMAGES}/overlays/geometry"
OVERLAYS = f"{IMAGES}/overlays"
GENERATE = f"{IMAGES}/generate"
RED = "#ff0000"


def _grid(cols: int = 12, rows: int = 10, cell_px: int = 20, **extra: Any) -> dict[str, Any]:
    return {"type": "square", "cols": cols, "rows": rows, "cell_px": cell_px, **extra}


def _error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    return response.json()["error"]  # type: ignore[no-any-return]


def _generate(client: TestClient, body: dict[str, Any]) -> str:
    r = client.post(GENERATE, json={"width": 64, "height": 64, "steps": 2, **body})
    assert r.status_code == 200, r.text
    return r.headers["x-image-id"]


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def test_geometry_answers_a_fireball_by_the_centre_rule(client: TestClient) -> None:
    # A 20-ft sphere from the intersection (6, 5): under the centre rule a cell counts when its centre is within
    # 4 cells of the origin (inclusive). Brute force over every cell.
    body = {
        "grid": _grid(),
        "templates": [{"id": "fireball", "shape": "sphere", "origin": {"x": 6, "y": 5}, "distance_ft": 20}],
    }
    r = client.post(GEOMETRY, json=body)
    assert r.status_code == 200, r.text
    (fireball,) = r.json()["templates"]
    expected = sorted(
        [c, row] for c in range(12) for row in range(10) if math.hypot(c + 0.5 - 6, row + 0.5 - 5) <= 4 + 1e-9
    )
    assert sorted(fireball["cells"]) == expected
    assert fireball["count"] == len(expected) and fireball["rule"] == "center"


def test_geometry_gives_token_footprints_and_centres(client: TestClient) -> None:
    body = {
        "grid": _grid(),
        "tokens": [
            {"id": "ogre", "cell": [2, 3], "size": "large"},
            {"id": "rat", "cell": [0, 0], "size": "tiny"},
            {"id": "dragon", "cell": [5, 5], "size": "huge"},
        ],
    }
    tokens = {t["id"]: t for t in client.post(GEOMETRY, json=body).json()["tokens"]}
    assert sorted(tokens["ogre"]["cells"]) == [[2, 3], [2, 4], [3, 3], [3, 4]]
    assert tokens["ogre"]["center"] == {"x": 3.0, "y": 4.0}
    assert tokens["rat"]["cells"] == [[0, 0]]
    assert sorted(tokens["dragon"]["cells"]) == sorted([c, r] for c in range(5, 8) for r in range(5, 8))
    assert tokens["dragon"]["center"] == {"x": 6.5, "y": 6.5}


def test_a_path_keeps_the_5_10_5_diagonal_count_across_waypoints(client: TestClient) -> None:
    # DMG p. 252: one diagonal (5) + three straight (15) + one diagonal (10) = 30 ft, the count kept across the
    # waypoint in between.
    body = {
        "grid": _grid(diagonals="5-10-5"),
        "paths": [{"id": "p", "waypoints": [[0, 0], [1, 1], [4, 1], [5, 2]]}],
    }
    (path,) = client.post(GEOMETRY, json=body).json()["paths"]
    assert path["cost_ft"] == pytest.approx(30.0)
    assert path["cells"][0] == [0, 0] and path["cells"][-1] == [5, 2]


def test_movement_answers_every_reachable_cell_with_its_cost(client: TestClient) -> None:
    # 5-5-5 on an open grid: cost = 5 x Chebyshev distance from the footprint, the footprint itself left out.
    body = {
        "grid": _grid(),
        "tokens": [{"id": "hero", "cell": [5, 5]}],
        "movement": [{"id": "m", "token": "hero", "speed_ft": 10}],
    }
    (move,) = client.post(GEOMETRY, json=body).json()["movement"]
    got = {tuple(e["cell"]): e["cost_ft"] for e in move["reachable"]}
    expected = {
        (c, r): 5.0 * max(abs(c - 5), abs(r - 5))
        for c in range(12)
        for r in range(10)
        if 0 < max(abs(c - 5), abs(r - 5)) <= 2
    }
    assert got == pytest.approx(expected)


def test_hex_geometry_also_answers_axial_coordinates(client: TestClient) -> None:
    grid = {"type": "hex", "cols": 6, "rows": 6, "size_px": 20, "orientation": "pointy", "offset": "odd-r"}
    body = {"grid": grid, "tokens": [{"id": "t", "cell": [3, 3]}]}
    (token,) = client.post(GEOMETRY, json=body).json()["tokens"]
    # odd-r: q = col - (row - (row & 1)) / 2 = 3 - 1 = 2, r = row = 3 (Red Blob Games).
    assert token["cells"] == [[3, 3]] and token["cells_axial"] == [[2, 3]]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        (
            {"tokens": [{"id": f"t{i}", "cell": [i, 0]} for i in range(3)] + [{"id": "t3", "cell": [12, 0]}]},
            "tokens[3].cell",
        ),
        (
            {"templates": [{"id": "x", "shape": "sphere", "origin": {"x": 1, "y": 1}, "distance_ft": -5}]},
            "templates[0].distance_ft",
        ),
        (
            {"templates": [{"id": "x", "shape": "hexagon", "origin": {"x": 1, "y": 1}, "distance_ft": 5}]},
            "templates[0].shape",
        ),
        (
            {"templates": [{"id": "x", "shape": "cone", "origin": {"x": 1, "y": 1}, "distance_ft": 5, "rule": "most"}]},
            "templates[0].rule",
        ),
        ({"paths": [{"id": "p", "waypoints": [[0, 0], [3, 40]]}]}, "paths[0].waypoints[1]"),
        ({"terrain": {"walls": [[{"x": 0, "y": 0}, {"x": 30, "y": 0}]]}}, "terrain.walls[0][1]"),
        ({"grid": _grid(cols=200, rows=200, cell_px=400)}, "grid"),
        ({"grid": _grid(cols=201, rows=200)}, "grid.cols"),
        ({"tokens": [{"id": "a", "cell": "B3"}]}, "tokens[0].cell"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client: TestClient, change: dict[str, Any], param: str) -> None:
    body = {"grid": _grid(), **change}
    error = _error(client.post(GEOMETRY, json=body))
    assert error["param"] == param, error


def test_an_unknown_shape_lists_the_allowed_ones(client: TestClient) -> None:
    body = {"grid": _grid(), "templates": [{"id": "x", "shape": "blob", "origin": {"x": 1, "y": 1}, "distance_ft": 5}]}
    message = _error(client.post(GEOMETRY, json=body))["message"]
    assert all(shape in message for shape in ("sphere", "cylinder", "cone", "line", "cube", "emanation"))


def test_a_plain_canvas_overlay_is_the_grids_exact_size_and_draws_tokens_where_they_stand(client: TestClient) -> None:
    body = {"grid": _grid(cols=8, rows=6, cell_px=30), "tokens": [{"id": "hero", "cell": [2, 1], "color": RED}]}
    r = client.post(f"{OVERLAYS}?format=png", json=body, headers={"Accept": "image/png"})
    assert r.status_code == 201, r.text
    image = np.asarray(_png(r.content).convert("RGB"))
    assert image.shape == (6 * 30, 8 * 30, 3)
    centre = image[int(1.5 * 30), int(2.5 * 30)]
    assert tuple(centre) == (255, 0, 0)  # the disc's centre pixel is the token's colour
    empty = image[int(4.5 * 30), int(6.5 * 30)]
    assert tuple(empty) == (0xF4, 0xEC, 0xD8)  # a cell with nothing on it is the plain canvas


def test_an_overlay_on_an_image_is_a_derived_version_and_put_redraws_the_same_background(client: TestClient) -> None:
    image_id = _generate(client, {"prompt": "a stone floor", "seed": 3})
    spec = {"grid": _grid(cols=4, rows=4, cell_px=16), "tokens": [{"id": "a", "cell": [0, 0], "color": RED}]}
    created = client.post(f"{IMAGES}/{image_id}/overlays", json=spec)
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["version"] == 1 and doc["background_image_id"] == image_id
    render = client.get(f"{IMAGES}/{doc['image_id']}").json()
    assert render["parent_id"] == image_id and (render["width"], render["height"]) == (64, 64)

    moved = {**spec, "tokens": [{"id": "a", "cell": [3, 3], "color": RED}]}
    put = client.put(f"{OVERLAYS}/{doc['id']}", json=moved, headers={"If-Match": '"1"'})
    assert put.status_code == 200, put.text
    v2 = put.json()
    assert v2["id"] == doc["id"] and v2["version"] == 2 and v2["background_image_id"] == image_id
    assert v2["image_id"] != doc["image_id"]
    assert client.get(f"{IMAGES}/{v2['image_id']}").json()["parent_id"] == image_id  # the art, not the old render
    pixels = np.asarray(_png(client.get(f"{IMAGES}/{v2['image_id']}/file").content).convert("RGB"))
    assert tuple(pixels[int(3.5 * 16), int(3.5 * 16)]) == (255, 0, 0)

    stale = client.put(f"{OVERLAYS}/{doc['id']}", json=spec, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["error"]["param"] == "If-Match"
    assert client.get(f"{OVERLAYS}/{doc['id']}").json()["version"] == 2  # the stale edit changed nothing


def test_the_same_spec_on_the_same_image_is_the_same_bytes_and_the_same_row(client: TestClient) -> None:
    body = {
        "grid": _grid(cols=10, rows=8, cell_px=24),
        "tokens": [{"id": "a", "cell": [1, 1], "label": "A"}],
        "templates": [{"id": "cone", "shape": "cone", "origin": {"x": 2, "y": 2}, "direction": 30, "distance_ft": 15}],
        "paths": [{"id": "p", "waypoints": [[1, 1], [6, 4]]}],
    }
    first = client.post(f"{OVERLAYS}?format=png", json=body, headers={"Accept": "image/png"})
    second = client.post(f"{OVERLAYS}?format=png", json=body, headers={"Accept": "image/png"})
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    a = client.post(OVERLAYS, json=body).json()
    b = client.post(OVERLAYS, json=body).json()
    assert a["image_id"] == b["image_id"]  # one derived image for one spec on one background


def test_an_overlay_on_a_missing_image_is_404_and_a_missing_overlay_too(client: TestClient) -> None:
    body = {"grid": _grid()}
    assert client.post(f"{IMAGES}/00000000-0000-0000-0000-000000000000/overlays", json=body).status_code == 404
    missing = client.get(f"{OVERLAYS}/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "overlay_id"
    assert client.get(f"{OVERLAYS}/not-a-uuid").status_code == 404


def test_a_theme_palette_colours_what_the_spec_leaves_out(client: TestClient, local: Local) -> None:
    theme = {"name": "overlay-red", "palette": ["#00ff00", "#0000ff"], "fragments": ["moss"]}
    assert client.post(f"{IMAGES}/styles", json=theme).status_code == 201
    image_id = _generate(client, {"prompt": "a floor", "seed": 9, "theme": "overlay-red"})
    spec = {"grid": _grid(cols=4, rows=4, cell_px=16), "tokens": [{"id": "a", "cell": [1, 1]}]}
    doc = client.post(f"{IMAGES}/{image_id}/overlays", json=spec).json()
    pixels = np.asarray(_png(client.get(f"{IMAGES}/{doc['image_id']}/file").content).convert("RGB"))
    assert tuple(pixels[int(1.5 * 16), int(1.5 * 16)]) == (0, 255, 0)  # the theme's first colour


def test_a_path_longer_than_the_configured_bound_is_refused_before_any_search(client: TestClient) -> None:
    # 60 legs corner to corner of a 100 x 100 grid: 60 x 99 cells of waypoint-to-waypoint distance, past the
    # default 2000 (a search that long would hold the overlay stage for seconds).
    waypoints = [[0, 0] if i % 2 == 0 else [99, 99] for i in range(61)]
    body = {"grid": _grid(cols=100, rows=100, cell_px=10), "paths": [{"id": "p", "waypoints": waypoints}]}
    error = _error(client.post(GEOMETRY, json=body))
    assert error["param"] == "paths[0].waypoints" and "2000" in error["message"]


def test_a_token_naming_a_missing_image_is_a_422_on_its_image_id(client: TestClient) -> None:
    body = {"grid": _grid(), "tokens": [{"id": "a", "cell": [1, 1]}, {"id": "b", "cell": [2, 2], "image_id": "nope"}]}
    error = _error(client.post(OVERLAYS, json=body))
    assert error["param"] == "tokens[1].image_id"


def test_token_art_is_drawn_inside_its_disc(client: TestClient) -> None:
    art_id = _generate(client, {"prompt": "a green goblin face", "seed": 21})
    art = np.asarray(Image.open(io.BytesIO(client.get(f"{IMAGES}/{art_id}/file").content)).convert("RGB"))
    body = {"grid": _grid(cols=4, rows=4, cell_px=64), "tokens": [{"id": "g", "cell": [1, 1], "image_id": art_id}]}
    r = client.post(f"{OVERLAYS}?format=png", json=body, headers={"Accept": "image/png"})
    assert r.status_code == 201, r.text
    pixels = np.asarray(_png(r.content).convert("RGB")).astype(int)
    # The disc's centre shows the art's centre (64 px art scaled to the ~58 px disc: allow resampling error).
    centre = pixels[96, 96]
    assert np.abs(centre - art[32, 32].astype(int)).max() <= 40
    assert tuple(pixels[8, 8]) == (0xF4, 0xEC, 0xD8)  # outside every disc: the canvas
