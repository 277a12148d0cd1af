"""pipelines/overlay/export/uvtt.py: the written file read back by an independent reader here (json + base64 +
PIL), hand-made .dd2vtt files read in (origin, unknown keys, formats, embedded PNG and JPEG), errors naming keys."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import re
from typing import Any

import pytest
from PIL import Image

from pipelines.errors import InputError
from pipelines.overlay.export.uvtt import UVTT_FORMAT, dumps, from_uvtt, to_uvtt
from pipelines.overlay.spec import (
    Feature,
    Grid,
    Light,
    OverlaySpec,
    Portal,
    Terrain,
    check,
)

TOP_KEYS = [
    "format",
    "resolution",
    "line_of_sight",
    "objects_line_of_sight",
    "portals",
    "environment",
    "lights",
    "image",
]
ARGB = re.compile(r"^[0-9a-f]{8}$")
MARK = (255, 0, 0)


def _image_bytes(width: int, height: int, fmt: str = "PNG", marks: tuple[tuple[int, int], ...] = ()) -> bytes:
    image = Image.new("RGB", (width, height), (40, 60, 80))
    for xy in marks:
        image.putpixel(xy, MARK)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def _scene() -> OverlaySpec:
    terrain = Terrain(
        walls=(((0.0, 0.0), (3.0, 0.0), (3.0, 2.0)), ((4.5, 3.25), (5.0, 3.25))),
        doors=(Portal((1.0, 2.0), (2.0, 2.0)), Portal((4.0, 1.0), (4.0, 2.0), closed=False)),
        windows=(Portal((3.0, 4.0), (2.0, 3.0)),),
        features=(
            Feature("pillar", (1, 1)),
            Feature("chest", (2, 1)),
            Feature("tree", (0, 3), blocks_sight=False),
            Feature("table", (4, 0), blocks_sight=True),
        ),
    )
    lights = (
        Light((2.5, 1.5), 6.0, "#FFAA00", 0.75, True),
        Light((0.0, 4.0), 2.5, "80FF0000", 1.0, False),
    )
    return OverlaySpec(grid=Grid(cols=5, rows=4, cell_px=16), terrain=terrain, lights=lights)


def _read(data: bytes) -> tuple[dict[str, Any], Image.Image]:
    """The independent reader: JSON, then the base64 image (no data: prefix) decoded by PIL."""
    doc = json.loads(data.decode("ascii"))
    assert not doc["image"].startswith("data:")
    image = Image.open(io.BytesIO(base64.b64decode(doc["image"], validate=True)))
    image.load()
    return doc, image


def _to_px(doc: dict[str, Any], point: dict[str, float]) -> tuple[int, int]:
    """Importer maths: (point - map_origin) * pixels_per_grid."""
    res = doc["resolution"]
    ppg = res["pixels_per_grid"]
    return (
        round((point["x"] - res["map_origin"]["x"]) * ppg),
        round((point["y"] - res["map_origin"]["y"]) * ppg),
    )


# -- writing ------------------------------------------------------------------------------------------------------


def test_every_key_present_in_order_with_format_and_resolution() -> None:
    png = _image_bytes(80, 64)
    doc, image = _read(dumps(to_uvtt(_scene(), png)))
    assert list(doc) == TOP_KEYS
    assert doc["format"] == UVTT_FORMAT == 0.3
    assert doc["resolution"] == {"map_origin": {"x": 0, "y": 0}, "map_size": {"x": 5, "y": 4}, "pixels_per_grid": 16}
    assert image.format == "PNG"
    assert image.size == (doc["resolution"]["map_size"]["x"] * 16, doc["resolution"]["map_size"]["y"] * 16)
    assert base64.b64decode(doc["image"]) == png
    assert doc["environment"] == {"baked_lighting": True, "ambient_light": "ffffffff"}
    for portal in doc["portals"]:
        assert list(portal) == ["position", "bounds", "rotation", "closed", "freestanding"]
    for light in doc["lights"]:
        assert list(light) == ["position", "range", "intensity", "color", "shadows"]


def test_empty_terrain_still_has_every_key_with_empty_arrays() -> None:
    spec = OverlaySpec(grid=Grid(cols=2, rows=3, cell_px=10))
    doc, image = _read(dumps(to_uvtt(spec, _image_bytes(20, 30), baked_lighting=False)))
    assert list(doc) == TOP_KEYS
    for key in ("line_of_sight", "objects_line_of_sight", "portals", "lights"):
        assert doc[key] == []
    assert doc["environment"]["baked_lighting"] is False
    assert image.size == (20, 30)


def test_wall_vertices_are_in_cells_and_land_on_the_image_marks() -> None:
    # Marks painted at the pixels the wall corners must map to: (3, 0) -> (48, 0), (3, 2) -> (48, 32)
    # (pixel 48 is the first pixel right of x = 3 cells), (4.5, 3.25) -> (72, 52).
    png = _image_bytes(80, 64, marks=((48, 0), (48, 32), (72, 52)))
    doc, image = _read(dumps(to_uvtt(_scene(), png)))
    assert doc["line_of_sight"] == [
        [{"x": 0.0, "y": 0.0}, {"x": 3.0, "y": 0.0}, {"x": 3.0, "y": 2.0}],
        [{"x": 4.5, "y": 3.25}, {"x": 5.0, "y": 3.25}],
    ]
    for point in (doc["line_of_sight"][0][1], doc["line_of_sight"][0][2], doc["line_of_sight"][1][0]):
        assert image.getpixel(_to_px(doc, point)) == MARK


def test_blocking_features_become_closed_cell_outlines() -> None:
    doc, _ = _read(dumps(to_uvtt(_scene(), _image_bytes(80, 64))))

    def square(c: int, r: int) -> list[dict[str, float]]:
        corners = [(c, r), (c + 1, r), (c + 1, r + 1), (c, r + 1), (c, r)]
        return [{"x": float(x), "y": float(y)} for x, y in corners]

    # pillar blocks by default, chest does not, the tree is told not to, the table is told to
    assert doc["objects_line_of_sight"] == [square(1, 1), square(4, 0)]
    for outline in doc["objects_line_of_sight"]:
        assert len(outline) == 5 and outline[0] == outline[-1]


def test_portals_position_bounds_rotation_in_radians_and_closed() -> None:
    doc, _ = _read(dumps(to_uvtt(_scene(), _image_bytes(80, 64))))
    portals = doc["portals"]
    assert len(portals) == 3
    for portal in portals:
        a, b = portal["bounds"]
        assert portal["position"] == pytest.approx({"x": (a["x"] + b["x"]) / 2, "y": (a["y"] + b["y"]) / 2})
        assert portal["rotation"] == pytest.approx(math.atan2(b["y"] - a["y"], b["x"] - a["x"]))
        assert portal["freestanding"] is False
    # hand-worked: a horizontal door east (0 rad), a door pointing south (y down: +pi/2), a window pointing
    # north-west from (3, 4) to (2, 3): atan2(-1, -1) = -3 pi / 4
    assert [p["rotation"] for p in portals] == pytest.approx([0.0, math.pi / 2, -3 * math.pi / 4])
    assert [p["closed"] for p in portals] == [True, False, False]
    assert portals[0]["bounds"] == [{"x": 1.0, "y": 2.0}, {"x": 2.0, "y": 2.0}]
    assert portals[2]["position"] == {"x": 2.5, "y": 3.5}


def test_lights_in_cells_with_lowercase_argb() -> None:
    doc, _ = _read(dumps(to_uvtt(_scene(), _image_bytes(80, 64), ambient_light="#102030")))
    assert doc["lights"] == [
        {"position": {"x": 2.5, "y": 1.5}, "range": 6.0, "intensity": 0.75, "color": "ffffaa00", "shadows": True},
        {"position": {"x": 0.0, "y": 4.0}, "range": 2.5, "intensity": 1.0, "color": "80ff0000", "shadows": False},
    ]
    for colour in [light["color"] for light in doc["lights"]] + [doc["environment"]["ambient_light"]]:
        assert ARGB.match(colour)
    assert doc["environment"]["ambient_light"] == "ff102030"


def test_dumps_is_compact_stable_ascii_json() -> None:
    doc = to_uvtt(_scene(), _image_bytes(80, 64))
    data = dumps(doc)
    assert data == dumps(copy.deepcopy(doc))
    assert b": " not in data and b", " not in data
    assert json.loads(data) == doc
    data.decode("ascii")
    with pytest.raises(ValueError):
        dumps({"format": float("nan")})


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ("hex", "grid.type"),
        ("small_image", "image"),
        ("jpeg", "image"),
        ("not_an_image", "image"),
        ("ambient", "ambient_light"),
        ("light_colour", "lights[1].color"),
    ],
)
def test_export_errors_name_the_field(change: str, param: str) -> None:
    spec, png, ambient = _scene(), _image_bytes(80, 64), "ffffffff"
    if change == "hex":
        spec = OverlaySpec(grid=Grid(type="hex", cols=5, rows=4))
    elif change == "small_image":
        png = _image_bytes(80, 63)
    elif change == "jpeg":
        png = _image_bytes(80, 64, fmt="JPEG")
    elif change == "not_an_image":
        png = b"hello"
    elif change == "ambient":
        ambient = "fffffff"
    else:
        spec = OverlaySpec(grid=spec.grid, lights=(spec.lights[0], Light((1.0, 1.0), 1.0, "#12345g")))
    with pytest.raises(InputError) as info:
        to_uvtt(spec, png, ambient_light=ambient)
    assert info.value.param == param


# -- reading ------------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _handmade(fmt: float = 0.3, image: str | None = None) -> dict[str, Any]:
    """A Dungeondraft-like sub-region export: origin (10, 5), 6 x 4.5 cells at 32 px, plus keys we do not know."""
    return {
        "format": fmt,
        "software": "dungeondraft",
        "creator": "test",
        "resolution": {
            "map_origin": {"x": 10, "y": 5},
            "map_size": {"x": 6, "y": 4.5},
            "pixels_per_grid": 32,
            "unknown": [1, 2],
        },
        "line_of_sight": [
            [{"x": 10, "y": 5}, {"x": 16, "y": 5}, {"x": 16, "y": 9.5}],
            [{"x": 12.5, "y": 7.25}, {"x": 13.5, "y": 7.25}],
        ],
        "objects_line_of_sight": [
            [{"x": 11, "y": 6}, {"x": 12, "y": 6}, {"x": 12, "y": 7}, {"x": 11, "y": 7}, {"x": 11, "y": 6}]
        ],
        "portals": [
            {
                "position": {"x": 14.5, "y": 8},
                "bounds": [{"x": 14, "y": 8}, {"x": 15, "y": 8}],
                "rotation": 0.0,
                "closed": True,
                "freestanding": False,
                "colour": "nobody reads this",
            },
            {
                "position": {"x": 10, "y": 6.5},
                "bounds": [{"x": 10, "y": 6}, {"x": 10, "y": 7}],
                "rotation": 1.5707963,
                "closed": False,
                "freestanding": True,
            },
        ],
        "environment": {"baked_lighting": True, "ambient_light": "ff3c3c3c", "extra": 1},
        "lights": [
            {"position": {"x": 13, "y": 7}, "range": 4.5, "intensity": 0.8, "color": "ffEEAA44", "shadows": True},
            {"position": {"x": 15.5, "y": 5.5}, "range": 2, "intensity": 1, "color": "#00ff00", "shadows": False},
        ],
        "image": image if image is not None else _b64(_image_bytes(192, 144)),
    }


@pytest.mark.parametrize("fmt", [0.2, 0.3])
@pytest.mark.parametrize("form", ["dict", "str", "bytes", "bom"])
def test_import_handmade_file_subtracts_the_origin(fmt: float, form: str) -> None:
    png = _image_bytes(192, 144)
    raw = _handmade(fmt, _b64(png))
    text = json.dumps(raw, indent=2)
    doc: Any = {
        "dict": raw,
        "str": text,
        "bytes": text.encode("utf-8"),
        "bom": b"\xef\xbb\xbf" + text.encode("utf-8"),
    }[form]
    spec, image = from_uvtt(doc, feet_per_cell=10)
    assert spec.grid == Grid(type="square", cols=6, rows=5, cell_px=32, feet_per_cell=10.0)
    assert spec.terrain.walls == (
        ((0.0, 0.0), (6.0, 0.0), (6.0, 4.5)),
        ((2.5, 2.25), (3.5, 2.25)),
        ((1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0), (1.0, 1.0)),
    )
    assert spec.terrain.doors == (Portal((4.0, 3.0), (5.0, 3.0), closed=True),)
    assert [(w.a, w.b) for w in spec.terrain.windows] == [((0.0, 1.0), (0.0, 2.0))]
    assert spec.lights == (
        Light((3.0, 2.0), 4.5, "ffeeaa44", 0.8, True),
        Light((5.5, 0.5), 2.0, "ff00ff00", 1.0, False),
    )
    assert image == png
    check(spec)  # a spec the rest of the pipeline accepts


def test_import_embedded_jpeg_is_returned_as_is() -> None:
    jpeg = _image_bytes(192, 144, fmt="JPEG")
    _, image = from_uvtt(_handmade(image=_b64(jpeg)))
    assert image == jpeg
    with Image.open(io.BytesIO(image)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == (192, 144)


def test_import_without_image_or_optional_arrays() -> None:
    raw = {"format": 0.3, "resolution": {"map_size": {"x": 3, "y": 2}, "pixels_per_grid": 50}, "image": ""}
    spec, image = from_uvtt(raw)
    assert image is None
    assert spec.grid.cols == 3 and spec.grid.rows == 2 and spec.grid.cell_px == 50
    assert spec.terrain == Terrain() and spec.lights == ()
    raw.pop("image")
    raw["portals"] = None
    assert from_uvtt(raw)[1] is None


def test_import_clips_to_the_map_and_drops_what_is_off_it() -> None:
    raw = {
        "format": 0.3,
        "resolution": {"map_origin": {"x": 0, "y": 0}, "map_size": {"x": 4, "y": 4}, "pixels_per_grid": 20},
        # leaves the map to the right and comes back: two pieces; a point a hair outside is clamped
        "line_of_sight": [
            [{"x": 2, "y": 1}, {"x": 6, "y": 1}, {"x": 6, "y": 3}, {"x": 2, "y": 3}],
            [{"x": -0.0000001, "y": 0.5}, {"x": 1, "y": 0.5}],
            [{"x": 1, "y": 1}],
        ],
        "portals": [
            {"bounds": [{"x": 5, "y": 1}, {"x": 6, "y": 1}], "closed": True},
            {"bounds": [{"x": 3, "y": 2}, {"x": 5, "y": 2}], "closed": True},
        ],
        "lights": [
            {"position": {"x": 9, "y": 1}, "range": 3, "intensity": 1, "color": "ffffffff", "shadows": True},
            {"position": {"x": 1, "y": 1}, "range": 0, "intensity": 1, "color": "ffffffff", "shadows": True},
            {"position": {"x": 4, "y": 4}, "range": 1, "intensity": 1, "color": "ffffffff", "shadows": True},
        ],
    }
    spec, _ = from_uvtt(raw)
    assert spec.terrain.walls == (
        ((2.0, 1.0), (4.0, 1.0)),
        ((4.0, 3.0), (2.0, 3.0)),
        ((0.0, 0.5), (1.0, 0.5)),
    )
    assert spec.terrain.doors == (Portal((3.0, 2.0), (4.0, 2.0)),)
    assert [light.position for light in spec.lights] == [(4.0, 4.0)]
    check(spec)


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "param"),
    [
        (("format",), 0.4, "format"),
        (("format",), "0.3", "format"),
        (("format",), _DELETE, "format"),
        (("resolution",), _DELETE, "resolution"),
        (("resolution", "pixels_per_grid"), 0, "resolution.pixels_per_grid"),
        (("resolution", "pixels_per_grid"), 70.5, "resolution.pixels_per_grid"),
        (("resolution", "pixels_per_grid"), "70", "resolution.pixels_per_grid"),
        (("resolution", "pixels_per_grid"), True, "resolution.pixels_per_grid"),
        (("resolution", "map_size"), {"x": 0, "y": 3}, "resolution.map_size"),
        (("resolution", "map_size"), _DELETE, "resolution.map_size"),
        (("resolution", "map_origin"), {"x": "a", "y": 0}, "resolution.map_origin"),
        (("line_of_sight",), {"walls": []}, "line_of_sight"),
        (("line_of_sight", 0), 7, "line_of_sight[0]"),
        (("line_of_sight", 1, 1), {"x": "a", "y": 1}, "line_of_sight[1][1]"),
        (("line_of_sight", 0, 2), {"x": 1}, "line_of_sight[0][2]"),
        (("objects_line_of_sight", 0, 3), [11, 7], "objects_line_of_sight[0][3]"),
        (("portals", 1), "door", "portals[1]"),
        (("portals", 0, "bounds"), [{"x": 14, "y": 8}], "portals[0].bounds"),
        (("portals", 1, "bounds", 1), {"x": float("nan"), "y": 1}, "portals[1].bounds[1]"),
        (("portals", 0, "closed"), "yes", "portals[0].closed"),
        (("lights", 1, "color"), "ff00ff0", "lights[1].color"),
        (("lights", 0, "range"), _DELETE, "lights[0].range"),
        (("lights", 0, "range"), -1, "lights[0].range"),
        (("lights", 0, "position"), None, "lights[0].position"),
        (("lights", 1, "shadows"), 1, "lights[1].shadows"),
        (("image",), "not base64 !!", "image"),
        (("image",), base64.b64encode(b"GIF89a....").decode(), "image"),
        (("image",), 12, "image"),
    ],
)
def test_import_errors_name_the_key(path: tuple[Any, ...], value: Any, param: str) -> None:
    raw = _handmade()
    _set(raw, path, value)
    with pytest.raises(InputError) as info:
        from_uvtt(raw)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("doc", "kwargs", "param"),
    [
        ("{not json", {}, "uvtt"),
        (b"\xff\xfe\x00", {}, "uvtt"),
        ("[1, 2]", {}, "uvtt"),
        (None, {"feet_per_cell": 0}, "feet_per_cell"),
    ],
)
def test_import_document_errors(doc: Any, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(InputError) as info:
        from_uvtt(doc if doc is not None else _handmade(), **kwargs)
    assert info.value.param == param


def test_round_trip_keeps_the_grid_walls_portals_lights_and_image() -> None:
    spec = _scene()
    png = _image_bytes(80, 64)
    back, image = from_uvtt(dumps(to_uvtt(spec, png)))
    assert image == png
    assert back.grid == spec.grid
    outlines = (
        ((1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0), (1.0, 1.0)),
        ((4.0, 0.0), (5.0, 0.0), (5.0, 1.0), (4.0, 1.0), (4.0, 0.0)),
    )
    assert back.terrain.walls == spec.terrain.walls + outlines
    # UVTT has no open door: it comes back as a window (an open portal)
    assert back.terrain.doors == (spec.terrain.doors[0],)
    assert [(w.a, w.b) for w in back.terrain.windows] == [((4.0, 1.0), (4.0, 2.0)), ((3.0, 4.0), (2.0, 3.0))]
    assert back.lights == (
        Light((2.5, 1.5), 6.0, "ffffaa00", 0.75, True),
        Light((0.0, 4.0), 2.5, "80ff0000", 1.0, False),
    )
    check(back)
