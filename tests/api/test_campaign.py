"""Campaign maps end to end on the tiny model through HTTP: the job and the map it records, the measured data
checked against hand-worked figures, an overlay edit that moves the party (a new version on unchanged art), route
planning, the GeoJSON export read back and imported, and bad specs as 422s naming the field."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

IMAGES = "/api/v2/images"
MAPS = f"{IMAGES}/maps"
CAMPAIGN = f"{MAPS}/campaign"

# A 256 x 192 canvas at 0.5 miles a pixel: a sea down the west edge, a forest in the middle, plains elsewhere;
# two towns joined by a road that bends round the forest's north edge.
SPEC: dict[str, Any] = {
    "canvas": {"width": 256, "height": 192},
    "scale": {"miles_per_pixel": 0.5},
    "title": "The Marches",
    "regions": [
        {"name": "Grey Sea", "terrain": "water", "polygon": [[0, 0], [40, 0], [40, 192], [0, 192]]},
        {"name": "Old Wood", "terrain": "forest", "polygon": [[100, 60], [160, 60], [160, 140], [100, 140]]},
    ],
    "pois": [
        {"name": "Westport", "kind": "port", "x": 50, "y": 100},
        {"name": "Highkeep", "kind": "capital", "x": 220, "y": 100},
        {"name": "Barrow", "kind": "dungeon", "x": 130, "y": 100},
    ],
    "territories": [
        {"name": "Kingdom", "color": "#aa2222", "polygon": [[40, 0], [130, 0], [130, 192], [40, 192]]},
        {"name": "Duchy", "color": "#2244aa", "polygon": [[130, 0], [256, 0], [256, 192], [130, 192]]},
    ],
    "routes": [
        {"kind": "road", "name": "King's Road", "from": "Westport", "to": "Highkeep", "via": []},
        {"kind": "trail", "points": [[130, 100], [130, 40]]},
    ],
    "party": {"x": 60, "y": 120, "travelled": [[50, 120]], "planned": [[108, 120]], "pace": "normal"},
    "resources": [{"kind": "lumber", "x": 140, "y": 120, "quantity": 3}],
}


@pytest.fixture(scope="module")
def client_module(local: Any) -> Any:
    from tests.api.conftest import create_api_lazily

    local.ready = True
    with TestClient(create_api_lazily(local)) as c:
        yield c


@pytest.fixture(scope="module")
def made(client_module: TestClient) -> dict[str, Any]:
    r = client_module.post(f"{CAMPAIGN}?wait=180", json={**SPEC, "seed": 5, "prompt": "a windswept coast"})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded", job
    return job


def _file(client: TestClient, image_id: str) -> bytes:
    r = client.get(f"{IMAGES}/{image_id}/file")
    assert r.status_code == 200
    return r.content


def test_a_campaign_map_job_records_art_background_render_and_measured_data(
    client_module: TestClient, made: dict[str, Any]
) -> None:
    client = client_module
    data = made["result"]["data"]
    map_id = data["map_id"]
    assert data["links"] == {
        "self": f"{MAPS}/{map_id}",
        "geojson": f"{MAPS}/{map_id}/export.geojson",
        "overlay": f"{MAPS}/{map_id}/overlay",
    }
    render = client.get(f"{IMAGES}/{data['render_image_id']}").json()
    background = client.get(f"{IMAGES}/{data['background_image_id']}").json()
    assert (render["width"], render["height"]) == (256, 192) == (background["width"], background["height"])
    assert render["parent_id"] == background["id"] and background["parent_id"] == data["art_image_id"]
    assert "windswept coast" in data["prompt"]
    measured = data["data"]
    # The road Westport (50, 100) -> Highkeep (220, 100): 170 px at 0.5 mi/px = 85 miles; on a road at the normal
    # pace (24 mi/day, the forest under it not difficult on the road) 85 / 24 days.
    road = measured["routes"][0]
    assert road["miles"] == pytest.approx(85.0, abs=0.01)
    assert road["days"] == pytest.approx(85 / 24, abs=0.01)
    # The forest: 60 x 80 px = 4800 px2 at 0.25 mi2/px2 = 1200 square miles.
    assert measured["regions"][1]["sq_miles"] == pytest.approx(1200.0, abs=0.01)
    holders = {p["name"]: p["territory"] for p in measured["pois"]}
    assert holders["Westport"] == "Kingdom" and holders["Highkeep"] == "Duchy"
    # The party walked 10 px (5 miles) and plans 48 px east, south of the road: over plains, then 8 px into the
    # forest (difficult, off-road): 20 miles of plains at 24 a day plus 4 miles at 12 a day.
    party = measured["party"]
    assert party["travelled_miles"] == pytest.approx(5.0, abs=0.01)
    assert party["planned_miles"] == pytest.approx(24.0, abs=0.01)
    assert party["planned_days"] == pytest.approx(20 / 24 + 4 / 12, abs=0.02)
    assert map_id == client.get(f"{MAPS}/{map_id}").json()["id"]


def test_a_campaign_maps_document_is_the_one_its_routes_declare(
    client_module: TestClient, made: dict[str, Any]
) -> None:
    """Found by the schemathesis run (tests/api/test_fuzz.py): ``GET /maps/{id}`` and ``/maps/{id}/overlay``
    declared only the tactical map's document (``geometry`` required), and a campaign map's has ``data`` instead.
    They declare either now, and a campaign map's answer is exactly :class:`CampaignMapResponse`."""
    from serve_app.api.app import create_api
    from serve_app.api.protocol.campaign import CampaignMapResponse

    map_id = made["result"]["data"]["map_id"]
    for suffix in ("", "/overlay"):
        r = client_module.get(f"{MAPS}/{map_id}{suffix}")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert set(doc) == set(CampaignMapResponse.model_fields), doc.keys()
        CampaignMapResponse.model_validate(doc)
    paths = create_api(None).openapi()["paths"]
    for path, method in (
        (f"{MAPS}/{{map_id}}", "get"),
        (f"{MAPS}/{{map_id}}/overlay", "get"),
        (f"{MAPS}/{{map_id}}/overlay", "put"),
    ):
        schema = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert {"$ref": "#/components/schemas/CampaignMapResponse"} in schema["anyOf"], (method, path)


def test_moving_the_party_makes_a_new_version_on_unchanged_art(client_module: TestClient, made: dict[str, Any]) -> None:
    client = client_module
    data = made["result"]["data"]
    map_id = data["map_id"]
    before = client.get(f"{MAPS}/{map_id}")
    assert before.status_code == 200 and before.headers["etag"] == '"1"'
    background_sha = hashlib.sha256(_file(client, data["background_image_id"])).hexdigest()
    moved = {**SPEC, "party": {"x": 84, "y": 120, "travelled": [[50, 120], [60, 120]], "planned": [[108, 120]]}}
    r = client.put(f"{MAPS}/{map_id}/overlay", json=moved, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["version"] == 2 and r.headers["etag"] == '"2"'
    assert doc["background_image_id"] == data["background_image_id"]
    assert doc["image_id"] != data["render_image_id"]
    assert doc["data"]["party"]["travelled_miles"] == pytest.approx(17.0, abs=0.01)  # 34 px walked
    assert hashlib.sha256(_file(client, data["background_image_id"])).hexdigest() == background_sha
    old = np.asarray(Image.open(io.BytesIO(_file(client, data["render_image_id"]))).convert("RGB")).astype(int)
    new = np.asarray(Image.open(io.BytesIO(_file(client, doc["image_id"]))).convert("RGB")).astype(int)
    assert old.shape == new.shape == (192, 256, 3)
    changed = np.abs(old - new).sum(axis=2) > 0
    assert changed[110:130, 55:95].any()  # the party marker moved east
    assert not changed[170:, 60:90].any()  # the south, far from the party, labels and legend, is untouched
    stale = client.put(f"{MAPS}/{map_id}/overlay", json=moved, headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    png = client.put(f"{MAPS}/{map_id}/overlay?format=png", json=SPEC, headers={"Accept": "image/png"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"


def test_a_route_between_two_towns_keeps_off_the_sea_and_costs_what_it_covers(
    client_module: TestClient, made: dict[str, Any]
) -> None:
    map_id = made["result"]["data"]["map_id"]
    r = client_module.post(
        f"{CAMPAIGN}/route", json={"map_id": map_id, "from": "Westport", "to": "Highkeep", "pace": "fast"}
    )
    assert r.status_code == 200, r.text
    plan = r.json()
    path = plan["path"]
    assert path[0] == pytest.approx([50, 100], abs=1) and path[-1] == pytest.approx([220, 100], abs=1)
    assert all(x >= 40 for x, _ in path)  # never over the water on foot
    length = sum(math.dist(a, b) for a, b in itertools.pairwise(path)) * 0.5
    assert plan["miles"] == pytest.approx(length, rel=0.01)
    assert plan["miles"] >= 85 - 0.5  # never shorter than the straight line
    assert plan["days"] == pytest.approx(sum(leg["days"] for leg in plan["legs"]), abs=0.01)
    # Along the road at the fast pace (30 mi/day): no worse than the road itself.
    assert plan["days"] <= 85 / 30 + 0.05
    bad = client_module.post(f"{CAMPAIGN}/route", json={"map_id": map_id, "from": "Atlantis", "to": "Highkeep"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "from"
    sea = client_module.post(f"{CAMPAIGN}/route", json={"map_id": map_id, "from": [10, 10], "to": "Highkeep"})
    assert sea.status_code == 422 and sea.json()["error"]["param"] == "from"
    missing = client_module.post(
        f"{CAMPAIGN}/route", json={"map_id": "00000000-0000-0000-0000-000000000000", "from": "a", "to": "b"}
    )
    assert missing.status_code == 404


def test_the_geojson_export_reads_back_into_the_same_spec(client_module: TestClient, made: dict[str, Any]) -> None:
    client = client_module
    map_id = made["result"]["data"]["map_id"]
    r = client.get(f"{MAPS}/{map_id}/export.geojson")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    assert doc["type"] == "FeatureCollection" and doc["limner:crs"]["y"] == "down"
    layers = [f["properties"]["layer"] for f in doc["features"]]
    assert layers.count("region") == 2 and layers.count("poi") == 3 and layers.count("route") == 2
    imported = client.post("/api/v2/images/maps/campaign/import", content=r.content)
    assert imported.status_code == 200, imported.text
    current = client.get(f"{MAPS}/{map_id}").json()["spec"]
    assert imported.json()["spec"] == current


def test_measure_answers_at_once_and_names_a_bad_field(client_module: TestClient) -> None:
    r = client_module.post("/api/v2/images/maps/campaign/measure", json=SPEC)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["routes"][0]["miles"] == pytest.approx(85.0, abs=0.01)  # 170 px at 0.5 mi/px
    assert data["regions"][0]["sq_miles"] == pytest.approx(40 * 192 * 0.25, abs=0.01)  # the sea strip
    assert data["territories"][1]["sq_miles"] == pytest.approx(126 * 192 * 0.25, abs=0.01)  # the Duchy
    bad = client_module.post("/api/v2/images/maps/campaign/measure", json={**SPEC, "scale": {"miles_per_pixel": -1}})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "scale.miles_per_pixel"
    not_json = client_module.post("/api/v2/images/maps/campaign/import", content=b"{not json")
    assert not_json.status_code == 422 and not_json.json()["error"]["param"] == "body"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        (
            {"regions": [{"name": "Knot", "terrain": "hills", "polygon": [[50, 50], [90, 90], [90, 50], [50, 90]]}]},
            "regions[0].polygon",
        ),
        ({"routes": [{"kind": "road", "from": "Westport", "to": "Nowhere"}]}, "routes[0].to"),
        ({"pois": [{"name": "Far", "kind": "town", "x": 300, "y": 10}]}, "pois[0]"),
        (
            {"regions": [{"name": "Lava", "terrain": "lava", "polygon": [[50, 50], [90, 50], [90, 90]]}]},
            "regions[0].terrain",
        ),
        ({"pois": [{"name": "X", "kind": "castle", "x": 10, "y": 10}]}, "pois[0].kind"),
    ],
)
def test_bad_specs_are_422s_naming_the_field(client_module: TestClient, change: dict[str, Any], param: str) -> None:
    r = client_module.post(CAMPAIGN, json={**SPEC, **change})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == param
    if param.endswith("terrain"):
        assert "forest" in error["message"] and "mountains" in error["message"]  # the allowed ones are listed
