"""pipelines/overlay/export/geojson.py: the FeatureCollection checked by an independent RFC 7946 reader here
(types, closed rings, right-hand winding by the shoelace formula on the raw numbers, coordinates on the canvas, the
limner:crs member), the properties, JSON serialisability, the round trip through parse_campaign for a polygon and a
hex spec, and InputErrors naming their field."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from pipelines.errors import InputError
from pipelines.overlay.campaign import CampaignSpec, parse_campaign
from pipelines.overlay.export.geojson import from_geojson, to_geojson

LAYER_TYPES = {
    "region": {"Polygon"},
    "territory": {"Polygon", "MultiPolygon"},
    "route": {"LineString"},
    "resource": {"Point"},
    "poi": {"Point"},
    "party": {"Point"},
    "party_travelled": {"LineString"},
    "party_planned": {"LineString"},
}


def _polygon_doc() -> dict[str, Any]:
    """A miles-per-pixel map: a clockwise-on-the-numbers region (reversed on export), a counter-clockwise one, a
    territory of two disjoint polygons, one of two overlapping polygons (merged), a linked route with a via."""
    return {
        "canvas": {"width": 640, "height": 480},
        "scale": {"miles_per_pixel": 0.25},
        "title": "The Reach",
        "layers": ["territories", "routes", "pois", "labels"],
        "travel": {"terrain": {"forest": 3}, "road": 0.9},
        "regions": [
            # Positive shoelace area on the raw numbers (clockwise on screen).
            {"name": "Grey Sea", "terrain": "water", "polygon": [[0, 0], [200, 0], [200, 480], [0, 480]]},
            # Negative shoelace area on the raw numbers: reversed on export.
            {
                "name": "Elder Wood",
                "terrain": "forest",
                "polygon": [[300.5, 40.25], [300.5, 200], [420, 200], [420, 40]],
            },
            {"name": "Spine", "terrain": "mountains", "polygon": [[450, 300], [600, 320], [520, 450.75]]},
        ],
        "pois": [
            {"name": "Aster", "kind": "capital", "x": 250.5, "y": 100.25},
            {"name": "Brill", "kind": "town", "x": 350, "y": 300, "icon": "tower"},
            {"name": "Cole", "kind": "village", "x": 500, "y": 120, "importance": 4},
            {"name": "Wild", "kind": "camp", "x": 620, "y": 460},
        ],
        "territories": [
            {
                "name": "Crown",
                "color": "#aa2233",
                "polygons": [
                    [[220, 20], [320, 20], [320, 150], [220, 150]],
                    [[330, 250], [400, 250], [400, 330], [330, 330]],
                ],
            },
            {
                "name": "League",
                "color": "#2233aa",
                "polygons": [
                    [[450, 80], [560, 80], [560, 180], [450, 180]],
                    [[520, 140], [600, 140], [600, 220], [520, 220]],
                ],
                "contested_with": "Crown",
            },
        ],
        "routes": [
            {"kind": "road", "name": "King's Road", "from": "Aster", "to": "Cole", "via": ["Brill"]},
            {"kind": "river", "name": "Mere", "points": [[210, 10], [260.75, 200], [240, 470]]},
            {"kind": "trail", "points": [[350, 300], [620, 460]]},
        ],
        "party": {
            "name": "Company",
            "x": 260,
            "y": 120,
            "travelled": [[240, 60], [250, 90]],
            "planned": [[300, 200], [345.5, 290]],
            "pace": "fast",
            "mode": "mounted",
        },
        "resources": [
            {"kind": "mine", "x": 560, "y": 400, "quantity": 120, "label": "Iron"},
            {"kind": "lumber", "x": 360, "y": 120},
        ],
    }


def _hex_doc() -> dict[str, Any]:
    """A hex map: a territory whose hexes ring an unclaimed hex (a Polygon with a hole), one of two hexes plus
    its own polygon (merged), and a single-polygon territory."""
    ring = [[3, 2], [3, 1], [2, 1], [1, 2], [1, 3], [2, 3]]  # the neighbours of hex (2, 2)
    return {
        "canvas": {"width": 400, "height": 320},
        "scale": {"hex": {"size_px": 20, "miles_per_hex": 6, "orientation": "flat"}},
        "regions": [{"name": "Moor", "terrain": "hills", "polygon": [[0, 0], [400, 0], [400, 320], [0, 320]]}],
        "pois": [
            {"name": "Hold", "kind": "fort", "x": 80, "y": 121.24},  # in the hole: no faction
            {"name": "Ring Town", "kind": "town", "x": 110, "y": 103.92},  # the centre of hex (3, 1)
            {"name": "Far", "kind": "ruin", "x": 330, "y": 280},
        ],
        "territories": [
            {"name": "Ring", "color": "#884400", "hexes": ring},
            {
                "name": "Marsh",
                "color": "#448800",
                "hexes": [[8, 0], [8, 1]],
                "polygons": [[[200, 250], [260, 250], [260, 300], [200, 300]]],
            },
            {"name": "Lone", "color": "#004488", "polygon": [[300, 260], [380, 260], [380, 310], [300, 310]]},
        ],
        "routes": [{"kind": "trail", "from": "Hold", "to": "Far"}],
        "party": {"x": 110, "y": 103.92, "planned": [[330, 280]]},
    }


# -- an independent reader ----------------------------------------------------------------------------------------


def _shoelace(ring: list[list[float]]) -> float:
    """Signed area on the raw numbers of a closed ring (positive: counter-clockwise with y up)."""
    return sum(ring[k][0] * ring[k + 1][1] - ring[k + 1][0] * ring[k][1] for k in range(len(ring) - 1)) / 2


def _positions(geometry: dict[str, Any]) -> list[list[float]]:
    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        return [coords]
    if kind == "LineString":
        return coords
    if kind == "Polygon":
        return [p for ring in coords for p in ring]
    return [p for polygon in coords for ring in polygon for p in ring]


def _check_ring(ring: list[list[float]], exterior: bool) -> None:
    assert len(ring) >= 4
    assert ring[0] == ring[-1]
    assert (_shoelace(ring) > 0) if exterior else (_shoelace(ring) < 0)


def _check_structure(doc: dict[str, Any], spec: CampaignSpec) -> None:
    assert doc["type"] == "FeatureCollection"
    crs = doc["limner:crs"]
    assert crs["type"] == "pixel" and crs["units"] == "px" and crs["y"] == "down"
    assert (crs["width"], crs["height"]) == (spec.width, spec.height)
    assert crs["miles_per_pixel"] == pytest.approx(spec.scale.miles_per_pixel)
    if spec.scale.hex is None:
        assert crs["hex"] is None
    else:
        assert crs["hex"]["size_px"] == spec.scale.hex.size_px
    assert isinstance(doc["features"], list)
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        props, geometry = feature["properties"], feature["geometry"]
        assert geometry["type"] in LAYER_TYPES[props["layer"]]
        assert "name" in props
        if geometry["type"] == "Polygon":
            polygons = [geometry["coordinates"]]
        elif geometry["type"] == "MultiPolygon":
            polygons = geometry["coordinates"]
        else:
            polygons = []
        for rings in polygons:
            _check_ring(rings[0], exterior=True)
            for hole in rings[1:]:
                _check_ring(hole, exterior=False)
        if geometry["type"] == "LineString":
            assert len(geometry["coordinates"]) >= 2
        for position in _positions(geometry):
            assert len(position) == 2
            assert all(type(v) in (int, float) and math.isfinite(v) for v in position)
            assert 0 <= position[0] <= spec.width and 0 <= position[1] <= spec.height
            assert all(round(v, 2) == v for v in position)


def _layer(doc: dict[str, Any], layer: str) -> list[dict[str, Any]]:
    return [f for f in doc["features"] if f["properties"]["layer"] == layer]


# -- writing --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [_polygon_doc, _hex_doc])
def test_structure_is_rfc7946_shaped(make: Any) -> None:
    spec = parse_campaign(make())
    doc = to_geojson(spec)
    _check_structure(doc, spec)
    json.dumps(doc, allow_nan=False)
    counts = {layer: len(_layer(doc, layer)) for layer in LAYER_TYPES}
    assert counts["region"] == len(spec.regions)
    assert counts["poi"] == len(spec.pois)
    assert counts["territory"] == len(spec.territories)
    assert counts["route"] == len(spec.routes)
    assert counts["resource"] == len(spec.resources)
    assert counts["party"] == 1
    assert counts["party_travelled"] == (1 if spec.party and spec.party.travelled else 0)
    assert counts["party_planned"] == 1


def test_the_crs_and_map_members() -> None:
    spec = parse_campaign(_hex_doc())
    crs = to_geojson(spec)["limner:crs"]
    assert crs == {
        "type": "pixel",
        "units": "px",
        "y": "down",
        "width": 400,
        "height": 320,
        "miles_per_pixel": 6 / (math.sqrt(3) * 20),
        "hex": {"size_px": 20.0, "miles_per_hex": 6.0, "orientation": "flat"},
    }
    meta = to_geojson(parse_campaign(_polygon_doc()))["limner:map"]
    assert meta["title"] == "The Reach"
    assert meta["layers"] == ["territories", "routes", "pois", "labels"]
    assert meta["travel"] == {"terrain": {"forest": 3}, "road": 0.9}


def test_rings_follow_the_right_hand_rule_and_keep_their_first_corner() -> None:
    doc = to_geojson(parse_campaign(_polygon_doc()))
    sea, wood, _ = _layer(doc, "region")
    # Already positive on the raw numbers: written as given, closed.
    assert sea["geometry"]["coordinates"] == [[[0, 0], [200, 0], [200, 480], [0, 480], [0, 0]]]
    assert "reversed" not in sea["properties"]
    # Negative on the raw numbers: reversed from its first corner, flagged.
    assert wood["geometry"]["coordinates"] == [[[300.5, 40.25], [420, 40], [420, 200], [300.5, 200], [300.5, 40.25]]]
    assert wood["properties"]["reversed"] == [True]


def test_territory_geometries() -> None:
    doc = to_geojson(parse_campaign(_polygon_doc()))
    crown, league = _layer(doc, "territory")
    # Disjoint polygons: the spec's own rings, a MultiPolygon, no source properties.
    assert crown["geometry"]["type"] == "MultiPolygon"
    assert len(crown["geometry"]["coordinates"]) == 2
    assert "polygons" not in crown["properties"] and "hexes" not in crown["properties"]
    # Overlapping polygons: the merged land, one Polygon, the source kept.
    assert league["geometry"]["type"] == "Polygon"
    assert league["properties"]["polygons"] == [
        [[450, 80], [560, 80], [560, 180], [450, 180]],
        [[520, 140], [600, 140], [600, 220], [520, 220]],
    ]
    assert abs(_shoelace(league["geometry"]["coordinates"][0])) == pytest.approx(110 * 100 + 80 * 80 - 40 * 40)
    assert league["properties"]["contested_with"] == "Crown"

    hexdoc = to_geojson(parse_campaign(_hex_doc()))
    ring, marsh, lone = _layer(hexdoc, "territory")
    # Six hexes round an unclaimed one: a Polygon with one hole, each a hex's area.
    assert ring["geometry"]["type"] == "Polygon"
    outer, *holes = ring["geometry"]["coordinates"]
    hex_area = 3 * math.sqrt(3) / 2 * 20**2
    assert len(holes) == 1
    assert _shoelace(outer) == pytest.approx(7 * hex_area, rel=1e-3)
    assert _shoelace(holes[0]) == pytest.approx(-hex_area, rel=1e-3)
    assert ring["properties"]["hexes"] == [[3, 2], [3, 1], [2, 1], [1, 2], [1, 3], [2, 3]]
    assert marsh["properties"]["hexes"] == [[8, 0], [8, 1]]
    assert marsh["properties"]["polygons"] == [[[200, 250], [260, 250], [260, 300], [200, 300]]]
    assert marsh["geometry"]["type"] == "MultiPolygon"  # the hexes and the polygon do not touch
    assert lone["geometry"]["type"] == "Polygon"


def test_routes_and_party_paths() -> None:
    spec = parse_campaign(_polygon_doc())
    doc = to_geojson(spec)
    road, river, trail = _layer(doc, "route")
    assert road["geometry"]["coordinates"] == [[250.5, 100.25], [350, 300], [500, 120]]
    assert (road["properties"]["from"], road["properties"]["to"], road["properties"]["via"]) == (
        "Aster",
        "Cole",
        ["Brill"],
    )
    assert river["properties"]["from"] is None and river["properties"]["via"] == []
    assert river["geometry"]["coordinates"] == [[210, 10], [260.75, 200], [240, 470]]
    assert trail["properties"]["name"] is None
    (travelled,) = _layer(doc, "party_travelled")
    (planned,) = _layer(doc, "party_planned")
    (party,) = _layer(doc, "party")
    assert party["geometry"]["coordinates"] == [260, 120]
    assert (party["properties"]["pace"], party["properties"]["mode"]) == ("fast", "mounted")
    assert travelled["geometry"]["coordinates"] == [[240, 60], [250, 90], [260, 120]]
    assert planned["geometry"]["coordinates"] == [[260, 120], [300, 200], [345.5, 290]]


def test_unmeasured_properties_are_null() -> None:
    doc = to_geojson(parse_campaign(_polygon_doc()))
    for feature in doc["features"]:
        props = feature["properties"]
        for key in ("miles", "days", "sq_miles", "faction"):
            if key in props:
                assert props[key] is None
    (iron, lumber) = _layer(doc, "resource")
    assert iron["properties"]["quantity"] == 120 and iron["properties"]["name"] == "Iron"
    assert lumber["properties"]["quantity"] is None and lumber["properties"]["label"] is None
    (brill,) = [f for f in _layer(doc, "poi") if f["properties"]["name"] == "Brill"]
    assert brill["properties"]["icon"] == "tower" and brill["properties"]["importance"] == 3


def test_coordinates_are_rounded() -> None:
    doc = _polygon_doc()
    doc["pois"][0].update(x=250.123456, y=100.999)
    doc["routes"][1]["points"][1] = [260.7549, 200.0051]
    out = to_geojson(parse_campaign(doc))
    aster = next(f for f in _layer(out, "poi") if f["properties"]["name"] == "Aster")
    assert aster["geometry"]["coordinates"] == [250.12, 101.0]
    assert _layer(out, "route")[1]["geometry"]["coordinates"][1] == [260.75, 200.01]


def test_measured_properties() -> None:
    pytest.importorskip("pipelines.overlay.campaign_travel")
    from pipelines.overlay.campaign_measure import measure_campaign

    spec = parse_campaign(_polygon_doc())
    geometry = measure_campaign(spec)
    doc = to_geojson(spec, geometry)
    _check_structure(doc, spec)
    json.dumps(doc, allow_nan=False)
    road, river, trail = _layer(doc, "route")
    by_hand = (math.dist((250.5, 100.25), (350, 300)) + math.dist((350, 300), (500, 120))) * 0.25
    assert road["properties"]["miles"] == pytest.approx(by_hand, abs=0.005)
    by_hand = (math.dist((210, 10), (260.75, 200)) + math.dist((260.75, 200), (240, 470))) * 0.25
    assert river["properties"]["miles"] == pytest.approx(by_hand, abs=0.005)
    assert trail["properties"]["miles"] == pytest.approx(math.dist((350, 300), (620, 460)) * 0.25, abs=0.005)
    for route, measured in zip((road, river, trail), geometry.routes, strict=True):
        assert route["properties"]["days"] == pytest.approx(measured.days, abs=0.0005)
        assert route["properties"]["days"] > 0
    factions = {f["properties"]["name"]: f["properties"]["faction"] for f in _layer(doc, "poi")}
    assert factions == {"Aster": "Crown", "Brill": "Crown", "Cole": "League", "Wild": None}
    sea = _layer(doc, "region")[0]
    assert sea["properties"]["sq_miles"] == pytest.approx(200 * 480 * 0.25**2)
    crown, league = _layer(doc, "territory")
    assert crown["properties"]["sq_miles"] == pytest.approx((100 * 130 + 70 * 80) * 0.0625, abs=0.01)
    assert league["properties"]["sq_miles"] == pytest.approx((11000 + 6400 - 1600) * 0.0625, abs=0.01)
    (travelled,) = _layer(doc, "party_travelled")
    assert travelled["properties"]["miles"] == pytest.approx(
        (math.dist((240, 60), (250, 90)) + math.dist((250, 90), (260, 120))) * 0.25, abs=0.005
    )
    (planned,) = _layer(doc, "party_planned")
    assert planned["properties"]["miles"] == pytest.approx(geometry.party_planned_miles, abs=0.005)
    assert planned["properties"]["days"] == pytest.approx(geometry.party_planned_days, abs=0.0005)

    hexspec = parse_campaign(_hex_doc())
    hexdoc = to_geojson(hexspec, measure_campaign(hexspec))
    _check_structure(hexdoc, hexspec)
    factions = {f["properties"]["name"]: f["properties"]["faction"] for f in _layer(hexdoc, "poi")}
    assert factions == {"Hold": None, "Ring Town": "Ring", "Far": "Lone"}
    ring = _layer(hexdoc, "territory")[0]
    mpp = 6 / (math.sqrt(3) * 20)
    assert ring["properties"]["sq_miles"] == pytest.approx(6 * 3 * math.sqrt(3) / 2 * 400 * mpp**2, rel=1e-3)


def test_a_geometry_of_another_spec_is_refused() -> None:
    from pipelines.overlay.campaign_measure import CampaignGeometry

    spec = parse_campaign(_polygon_doc())
    with pytest.raises(InputError) as err:
        to_geojson(spec, CampaignGeometry((), (), (), ()))
    assert err.value.param.startswith("geometry.")


# -- reading --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [_polygon_doc, _hex_doc])
def test_round_trip(make: Any) -> None:
    spec = parse_campaign(make())
    doc = to_geojson(spec)
    back = parse_campaign(from_geojson(json.loads(json.dumps(doc))))
    assert back == spec


def test_round_trip_of_a_bare_spec() -> None:
    spec = parse_campaign({"canvas": {"width": 64, "height": 64}, "scale": {"miles_per_pixel": 1}})
    doc = to_geojson(spec)
    assert doc["features"] == []
    assert parse_campaign(from_geojson(doc)) == spec


def test_hex_territories_come_back_from_their_hexes() -> None:
    spec = parse_campaign(_hex_doc())
    doc = to_geojson(spec)
    ring = _layer(doc, "territory")[0]
    ring["geometry"]["coordinates"][0][1] = [5.0, 5.0]  # the geometry is not read while hexes are there
    back = parse_campaign(from_geojson(doc))
    assert back.territories[0].hexes == spec.territories[0].hexes
    assert back.territories[0].polygons == ()


def test_edited_geometry_is_read_without_source_properties() -> None:
    """A territory or route edited in a GIS: the geometry is the source once the properties no longer point away."""
    spec = parse_campaign(_polygon_doc())
    doc = to_geojson(spec)
    league = _layer(doc, "territory")[1]
    del league["properties"]["polygons"]
    road = _layer(doc, "route")[0]
    road["properties"].update({"from": None, "to": None, "via": []})
    extra = {"layer": "poi", "name": "Dun", "kind": "ruin", "population": 12, "notes": {"any": "thing"}}
    doc["features"].append(
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5, 100]}, "properties": extra}
    )
    back = parse_campaign(from_geojson(doc))
    (merged,) = back.territories[1].polygons
    from shapely.geometry import Polygon

    assert Polygon(merged).area == pytest.approx(11000 + 6400 - 1600)
    assert back.routes[0].points == ((250.5, 100.25), (350.0, 300.0), (500.0, 120.0))
    assert back.routes[0].from_ is None
    assert back.pois[-1].name == "Dun" and (back.pois[-1].x, back.pois[-1].y) == (5.0, 5.0)


def test_reading_needs_no_map_member() -> None:
    spec = parse_campaign(_hex_doc())
    doc = to_geojson(spec)
    del doc["limner:map"]
    back = parse_campaign(from_geojson(doc))
    assert back.title is None and back.territories == spec.territories


def _broken(change: Any) -> str:
    """The ``param`` of the InputError from_geojson raises for a fresh export after ``change`` (in place)."""
    doc = to_geojson(parse_campaign(_polygon_doc()))
    change(doc)
    with pytest.raises(InputError) as err:
        from_geojson(doc)
    return err.value.param


def _feature_index(doc: dict[str, Any], layer: str) -> int:
    return next(i for i, f in enumerate(doc["features"]) if f["properties"]["layer"] == layer)


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> None:
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def test_errors_name_the_field() -> None:
    with pytest.raises(InputError) as err:
        from_geojson([])  # type: ignore[arg-type]
    assert err.value.param == "geojson"
    assert _broken(lambda d: _set(d, ["type"], "Feature")) == "type"
    assert _broken(lambda d: d.pop("limner:crs")) == "limner:crs"
    assert _broken(lambda d: d["limner:crs"].pop("width")) == "limner:crs.width"
    assert _broken(lambda d: _set(d, ["limner:crs", "y"], "up")) == "limner:crs.y"
    assert _broken(lambda d: _set(d, ["limner:crs", "miles_per_pixel"], None)) == "limner:crs.miles_per_pixel"
    assert _broken(lambda d: _set(d, ["limner:map"], "map")) == "limner:map"
    assert _broken(lambda d: _set(d, ["features"], {})) == "features"
    assert _broken(lambda d: _set(d, ["features", 3, "type"], "Thing")) == "features[3]"
    assert _broken(lambda d: _set(d, ["features", 3, "properties"], None)) == "features[3].properties"
    assert (
        _broken(lambda d: _set(d, ["features", 3, "properties", "layer"], "castle")) == "features[3].properties.layer"
    )
    # A region given as a Point, a route as a Polygon.
    assert _broken(lambda d: _set(d, ["features", 0, "geometry"], {"type": "Point", "coordinates": [1, 2]})) == (
        "features[0].geometry"
    )
    doc = to_geojson(parse_campaign(_polygon_doc()))
    route = _feature_index(doc, "route")
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    assert _broken(lambda d: _set(d, ["features", route, "geometry"], square)) == f"features[{route}].geometry"
    assert _broken(lambda d: _set(d, ["features", 0, "geometry"], None)) == "features[0].geometry"


def test_geometry_errors_name_the_coordinates() -> None:
    unclosed = [[[0, 0], [10, 0], [10, 10], [0, 10]]]
    assert _broken(lambda d: _set(d, ["features", 0, "geometry", "coordinates"], unclosed)) == (
        "features[0].geometry.coordinates[0]"
    )
    short = [[[0, 0], [10, 0], [0, 0]]]
    assert _broken(lambda d: _set(d, ["features", 0, "geometry", "coordinates"], short)) == (
        "features[0].geometry.coordinates[0]"
    )
    holed = [
        [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]],
        [[10, 10], [10, 20], [20, 20], [10, 10]],
    ]
    assert _broken(lambda d: _set(d, ["features", 0, "geometry", "coordinates"], holed)) == (
        "features[0].geometry.coordinates"
    )
    nan = [[[0, 0], [float("nan"), 0], [10, 10], [0, 0]]]
    assert _broken(lambda d: _set(d, ["features", 0, "geometry", "coordinates"], nan)) == (
        "features[0].geometry.coordinates[0][1]"
    )
    assert _broken(lambda d: _set(d, ["features", 1, "properties", "reversed"], "yes")) == (
        "features[1].properties.reversed"
    )
    doc = to_geojson(parse_campaign(_polygon_doc()))
    poi = _feature_index(doc, "poi")
    assert _broken(lambda d: _set(d, ["features", poi, "geometry", "coordinates"], [1])) == (
        f"features[{poi}].geometry.coordinates"
    )
    route = _feature_index(doc, "route")
    assert _broken(lambda d: _set(d, ["features", route, "geometry", "coordinates"], [[1, 2]])) == (
        f"features[{route}].geometry.coordinates"
    )


def test_party_errors() -> None:
    doc = to_geojson(parse_campaign(_polygon_doc()))
    party = _feature_index(doc, "party")

    def drop_party(d: dict[str, Any]) -> None:
        del d["features"][party]

    assert _broken(drop_party) == f"features[{party}].properties.layer"  # the travelled path is now at `party`

    def two_parties(d: dict[str, Any]) -> None:
        d["features"].append(copy.deepcopy(d["features"][party]))

    assert _broken(two_parties) == f"features[{len(doc['features'])}].properties.layer"


def test_parse_campaign_checks_the_values() -> None:
    """from_geojson leaves ranges to parse_campaign, whose errors name the campaign field."""
    doc = to_geojson(parse_campaign(_polygon_doc()))
    doc["features"][0]["properties"]["terrain"] = "lava"
    with pytest.raises(InputError) as err:
        parse_campaign(from_geojson(doc))
    assert err.value.param == "regions[0].terrain"
