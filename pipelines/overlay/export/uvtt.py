"""The Universal VTT map file (``.dd2vtt`` / ``.df2vtt`` / ``.uvtt``, TTRPG_RULES 1): write one from an overlay spec and
its background, read one into a spec.

**Units.** Every point in the file is in grid cells, which on a square grid are exactly our grid units (``(0, 0)``
the map's top-left corner, y down). ``pixels_per_grid`` is the only pixel number: the spec's ``cell_px``. Angles are
radians, ``rotation = atan2(dy, dx)`` of the portal's bounds with y down (so clockwise on screen, like our
degrees). Colours are 8-hex-digit ARGB, lowercase: ``#RRGGBB`` becomes ``ff`` + ``rrggbb``; an 8-digit value is
kept (lowercased). Feet never appear (feet per cell is the VTT's scene setting).

**Writing** (:func:`to_uvtt`, square grids only): ``format`` 0.3 and every key present (empty arrays allowed), in
the order ``format, resolution, line_of_sight, objects_line_of_sight, portals, environment, lights, image``
(:func:`dumps` keeps it). ``map_origin`` is always ``(0, 0)`` with points relative to the image's top-left (old
importers ignore the origin), ``map_size`` is ``cols x rows`` and the PNG must be exactly ``cols * cell_px`` by
``rows * cell_px`` pixels (a Roll20 importer scales points by the image width). Walls become ``line_of_sight``
polylines as given; each feature that blocks sight becomes its cell's outline in ``objects_line_of_sight``, a closed
5-point polyline clockwise from the top-left corner. Portals are the doors (``closed`` as given) and then the
windows (``closed`` false: importers read an open portal as a window), each with ``position`` (the midpoint),
``bounds`` ``[a, b]``, ``rotation``, ``closed`` and ``freestanding`` false. UVTT has no open door: an open door is
written ``closed`` false and comes back from :func:`from_uvtt` as a window. Non-blocking features, areas, tokens
and the other overlay items do not travel.

**Reading** (:func:`from_uvtt`): format 0.2 or 0.3; unknown keys are ignored; missing arrays (or ``null``) are
empty. ``map_origin`` (default ``(0, 0)``) is subtracted from every point. The grid is square with
``cols, rows = ceil(map_size)`` (a size within 1e-6 of a whole number counts as that number) and
``cell_px = pixels_per_grid``. Tie and edge rules: a point within 1e-6 cells outside the map
``[0, cols] x [0, rows]`` is clamped onto its edge; walls (``line_of_sight``, then ``objects_line_of_sight`` as walls
too) are clipped to the map and split where they leave it, and a polyline of fewer than 2 points adds nothing;
a portal's ``bounds`` decide where it is (``position``, ``rotation`` and ``freestanding`` are ignored), it is
clipped the same way and dropped when no length is left; ``closed`` portals (the default) become doors, open ones
windows. Lights outside the map or with range 0 are dropped; colours are normalised as above. ``environment`` is
ignored (a spec has no ambient light). The image is returned as the decoded bytes (PNG, JPEG or WebP, sniffed
from the first bytes; neither decoded nor resized), or None when the file has none. A bad value raises
:class:`~pipelines.errors.InputError` naming the key in bracket notation (``resolution.pixels_per_grid``,
``line_of_sight[3][1]``, ``portals[0].bounds``); a document that is not JSON is ``uvtt``. Range limits (the cell
size, the number of cells) are :func:`pipelines.overlay.spec.check`'s job afterwards.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

from pipelines.errors import InputError
from pipelines.overlay.spec import Cell, Grid, Light, OverlaySpec, Point, Portal, Terrain, field_path

__all__ = ["READ_FORMATS", "UVTT_FORMAT", "dumps", "from_uvtt", "to_uvtt"]

UVTT_FORMAT = 0.3
"""The format version :func:`to_uvtt` writes."""
READ_FORMATS = (0.2, 0.3)
"""The lowest and highest format versions :func:`from_uvtt` reads."""

_EDGE_TOLERANCE = 1e-6
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


# -- writing ------------------------------------------------------------------------------------------------------


def to_uvtt(
    spec: OverlaySpec, image_png: bytes, *, baked_lighting: bool = True, ambient_light: str = "ffffffff"
) -> dict[str, Any]:
    """The UVTT document of a square-grid spec and its background (module docstring: units, key order).

    Args:
        spec: A checked spec (:func:`pipelines.overlay.spec.check`) on a square grid.
        image_png: The background as PNG bytes, exactly ``cols * cell_px`` x ``rows * cell_px`` pixels.
        baked_lighting: Whether the art already shows its lighting (a VTT should then not light it again).
        ambient_light: Ambient colour, 8-digit ARGB or ``#RRGGBB``.

    Returns:
        The document as plain JSON-ready data (:func:`dumps` writes it).

    Raises:
        InputError: A hex grid (``grid.type``), an image that is not a PNG of the map's exact size (``image``),
            a colour that is not one (``ambient_light``, ``lights[i].color``).
    """
    grid = spec.grid
    if grid.is_hex:
        raise InputError("grid.type", "hex", "a square grid: UVTT carries square grids only")
    _check_png(image_png, grid.cols * grid.cell_px, grid.rows * grid.cell_px)
    terrain = spec.terrain
    return {
        "format": UVTT_FORMAT,
        "resolution": {
            "map_origin": {"x": 0, "y": 0},
            "map_size": {"x": grid.cols, "y": grid.rows},
            "pixels_per_grid": grid.cell_px,
        },
        "line_of_sight": [[_xy(p) for p in wall] for wall in terrain.walls],
        "objects_line_of_sight": [_cell_outline(f.cell) for f in terrain.features if f.blocks],
        "portals": [_portal(d, d.closed) for d in terrain.doors] + [_portal(w, False) for w in terrain.windows],
        "environment": {"baked_lighting": bool(baked_lighting), "ambient_light": _argb("ambient_light", ambient_light)},
        "lights": [_light(i, light) for i, light in enumerate(spec.lights)],
        "image": base64.b64encode(image_png).decode("ascii"),
    }


def dumps(doc: Mapping[str, Any]) -> bytes:
    """``doc`` as compact JSON bytes: keys in their given order, no spaces, ASCII only, no NaN or infinity.

    Raises:
        ValueError: A non-finite number in ``doc``.
    """
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def _check_png(data: bytes, width: int, height: int) -> None:
    """Reads the PNG's size from its IHDR chunk (no decoding, so no decompression-bomb limits apply)."""
    if not data.startswith(_PNG_MAGIC) or len(data) < 24 or data[12:16] != b"IHDR":
        raise InputError("image", f"{len(data)} bytes that are not a PNG", "PNG bytes")
    got = struct.unpack(">II", data[16:24])
    if got != (width, height):
        raise InputError(
            "image", f"{got[0]}x{got[1]} px", f"exactly {width}x{height} px (cols x cell_px by rows x cell_px)"
        )


def _xy(point: Point) -> dict[str, float]:
    return {"x": float(point[0]), "y": float(point[1])}


def _cell_outline(cell: Cell) -> list[dict[str, float]]:
    """The cell's square, closed: top-left, top-right, bottom-right, bottom-left, top-left."""
    c, r = cell
    return [_xy(p) for p in ((c, r), (c + 1, r), (c + 1, r + 1), (c, r + 1), (c, r))]


def _portal(portal: Portal, closed: bool) -> dict[str, Any]:
    (ax, ay), (bx, by) = portal.a, portal.b
    return {
        "position": _xy(((ax + bx) / 2, (ay + by) / 2)),
        "bounds": [_xy(portal.a), _xy(portal.b)],
        "rotation": math.atan2(by - ay, bx - ax),
        "closed": bool(closed),
        "freestanding": False,
    }


def _light(index: int, light: Light) -> dict[str, Any]:
    return {
        "position": _xy(light.position),
        "range": float(light.range),
        "intensity": float(light.intensity),
        "color": _argb(field_path("lights", index, "color"), light.color),
        "shadows": bool(light.shadows),
    }


def _argb(param: str, value: Any) -> str:
    """``#RRGGBB`` or ``RRGGBB`` -> ``ffrrggbb``; ``[#]AARRGGBB`` -> ``aarrggbb``."""
    digits = value[1:] if isinstance(value, str) and value.startswith("#") else value
    if not isinstance(digits, str) or len(digits) not in (6, 8) or not set(digits) <= _HEX_DIGITS:
        raise InputError(param, value, "a colour: 8-digit ARGB or #RRGGBB")
    digits = digits.lower()
    return digits if len(digits) == 8 else "ff" + digits


# -- reading ------------------------------------------------------------------------------------------------------


class _Frame:
    """The map rectangle ``[0, w] x [0, h]`` (cells) and the file's origin."""

    def __init__(self, origin: Point, w: float, h: float) -> None:
        self.origin, self.w, self.h = origin, w, h

    def clamp(self, point: Point) -> Point:
        """Moves a point within the edge tolerance outside the map onto its edge."""
        x, y = point
        if -_EDGE_TOLERANCE <= x < 0 or self.w < x <= self.w + _EDGE_TOLERANCE:
            x = min(max(x, 0.0), self.w)
        if -_EDGE_TOLERANCE <= y < 0 or self.h < y <= self.h + _EDGE_TOLERANCE:
            y = min(max(y, 0.0), self.h)
        return x, y

    def inside(self, point: Point) -> bool:
        return 0 <= point[0] <= self.w and 0 <= point[1] <= self.h

    def clip(self, a: Point, b: Point) -> tuple[Point, Point] | None:
        """The part of segment ``ab`` on the map (Liang-Barsky), or None when none is."""
        (x0, y0), (x1, y1) = a, b
        dx, dy = x1 - x0, y1 - y0
        t0, t1 = 0.0, 1.0
        for p, q in ((-dx, x0), (dx, self.w - x0), (-dy, y0), (dy, self.h - y0)):
            if p == 0:
                if q < 0:
                    return None
                continue
            t = q / p
            if p < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
            if t0 > t1:
                return None
        pa = a if t0 == 0 else self._onto((x0 + t0 * dx, y0 + t0 * dy))
        pb = b if t1 == 1 else self._onto((x0 + t1 * dx, y0 + t1 * dy))
        return pa, pb

    def _onto(self, point: Point) -> Point:
        return min(max(point[0], 0.0), self.w), min(max(point[1], 0.0), self.h)


def from_uvtt(doc: Mapping[str, Any] | bytes | str, *, feet_per_cell: float = 5.0) -> tuple[OverlaySpec, bytes | None]:
    """A square-grid spec (grid, walls, doors, windows, lights) and the image from a UVTT file (module docstring).

    Args:
        doc: The parsed document, or its JSON text (bytes may start with a UTF-8 byte-order mark).
        feet_per_cell: The grid's feet per cell (the file has no feet).

    Returns:
        The spec and the embedded image's bytes (None when the file has no image).

    Raises:
        InputError: A value the reader cannot use, named by its key (``format``, ``resolution.map_size``,
            ``line_of_sight[3][1]``, ``portals[2].bounds``, ``lights[0].color``, ``image``...), ``uvtt`` for a
            document that is not a JSON object, ``feet_per_cell`` for a non-positive one.
    """
    data = _load(doc)
    _check_format(data.get("format"))
    if not (_is_number(feet_per_cell) and feet_per_cell > 0):
        raise InputError("feet_per_cell", feet_per_cell, "more than 0")
    frame, cols, rows, ppg = _resolution(data.get("resolution"))
    walls = _walls("line_of_sight", data.get("line_of_sight"), frame)
    walls += _walls("objects_line_of_sight", data.get("objects_line_of_sight"), frame)
    doors, windows = _portals(data.get("portals"), frame)
    grid = Grid(type="square", cols=cols, rows=rows, cell_px=ppg, feet_per_cell=float(feet_per_cell))
    terrain = Terrain(walls=tuple(walls), doors=tuple(doors), windows=tuple(windows))
    spec = OverlaySpec(grid=grid, terrain=terrain, lights=tuple(_lights(data.get("lights"), frame)))
    return spec, _image(data.get("image"))


def _load(doc: Mapping[str, Any] | bytes | str) -> Mapping[str, Any]:
    if isinstance(doc, bytes | bytearray):
        try:
            doc = bytes(doc).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError("uvtt", f"byte {exc.start} is not UTF-8", "a UVTT JSON document") from None
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise InputError(
                "uvtt", f"invalid JSON at line {exc.lineno} column {exc.colno}", "a UVTT JSON document"
            ) from None
    if not isinstance(doc, Mapping):
        raise InputError("uvtt", type(doc).__name__, "a UVTT JSON object")
    return doc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_format(value: Any) -> None:
    low, high = READ_FORMATS
    if not (_is_number(value) and low - 1e-9 <= value <= high + 1e-9):
        raise InputError("format", value, f"a UVTT format version from {low} to {high}")


def _xy_of(param: str, value: Any) -> Point:
    """A ``{x, y}`` object as a point, or an InputError naming ``param``."""
    if not isinstance(value, Mapping) or not (_is_number(value.get("x")) and _is_number(value.get("y"))):
        raise InputError(param, value, "a point {x, y} in grid cells")
    return float(value["x"]), float(value["y"])


def _point(param: str, value: Any, frame: _Frame) -> Point:
    """A file point relative to the map's top-left (origin subtracted), clamped within the edge tolerance."""
    x, y = _xy_of(param, value)
    return frame.clamp((x - frame.origin[0], y - frame.origin[1]))


def _resolution(value: Any) -> tuple[_Frame, int, int, int]:
    if not isinstance(value, Mapping):
        raise InputError("resolution", value, "an object with map_size and pixels_per_grid (map_origin optional)")
    origin = value.get("map_origin")
    origin_xy = (0.0, 0.0) if origin is None else _xy_of("resolution.map_origin", origin)
    size = value.get("map_size")
    w, h = _xy_of("resolution.map_size", size)
    if w <= 0 or h <= 0:
        raise InputError("resolution.map_size", size, "a size {x, y} in cells, both more than 0")
    ppg = value.get("pixels_per_grid")
    if not (_is_number(ppg) and ppg > 0 and float(ppg).is_integer()):
        raise InputError("resolution.pixels_per_grid", ppg, "a whole number of pixels per cell, more than 0")
    cols, rows = (max(1, math.ceil(v - _EDGE_TOLERANCE)) for v in (w, h))
    return _Frame(origin_xy, float(cols), float(rows)), cols, rows, int(ppg)


def _array(key: str, value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(key, type(value).__name__, what)
    return value


def _walls(key: str, value: Any, frame: _Frame) -> list[tuple[Point, ...]]:
    out: list[tuple[Point, ...]] = []
    for i, line in enumerate(_array(key, value, "an array of polylines")):
        if not isinstance(line, list):
            raise InputError(field_path(key, i), type(line).__name__, "a polyline: an array of points {x, y}")
        points = [_point(field_path(key, i, j), p, frame) for j, p in enumerate(line)]
        out.extend(_clip_polyline(points, frame))
    return out


def _clip_polyline(points: list[Point], frame: _Frame) -> list[tuple[Point, ...]]:
    """The polyline's parts on the map: consecutive clipped segments that share an end stay one polyline."""
    runs: list[list[Point]] = []
    for a, b in itertools.pairwise(points):
        piece = frame.clip(a, b)
        if piece is None or piece[0] == piece[1]:
            continue
        if runs and runs[-1][-1] == piece[0]:
            runs[-1].append(piece[1])
        else:
            runs.append([piece[0], piece[1]])
    return [tuple(run) for run in runs]


def _portals(value: Any, frame: _Frame) -> tuple[list[Portal], list[Portal]]:
    doors: list[Portal] = []
    windows: list[Portal] = []
    for i, entry in enumerate(_array("portals", value, "an array of portals")):
        if not isinstance(entry, Mapping):
            raise InputError(field_path("portals", i), type(entry).__name__, "a portal object with bounds")
        bounds = entry.get("bounds")
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise InputError(field_path("portals", i, "bounds"), bounds, "two points [{x, y}, {x, y}]")
        a, b = (_point(field_path("portals", i, "bounds", j), p, frame) for j, p in enumerate(bounds))
        closed = entry.get("closed", True)
        if not isinstance(closed, bool):
            raise InputError(field_path("portals", i, "closed"), closed, "true or false")
        piece = frame.clip(a, b)
        if piece is None or piece[0] == piece[1]:
            continue
        if closed:
            doors.append(Portal(piece[0], piece[1], closed=True))
        else:
            windows.append(Portal(piece[0], piece[1]))
    return doors, windows


def _lights(value: Any, frame: _Frame) -> list[Light]:
    out: list[Light] = []
    for i, entry in enumerate(_array("lights", value, "an array of lights")):
        if not isinstance(entry, Mapping):
            raise InputError(field_path("lights", i), type(entry).__name__, "a light object")
        position = _point(field_path("lights", i, "position"), entry.get("position"), frame)
        values = {name: entry.get(name, default) for name, default in (("range", None), ("intensity", 1.0))}
        for name, number in values.items():
            if not (_is_number(number) and number >= 0):
                raise InputError(field_path("lights", i, name), number, "a number, at least 0")
        colour = _argb(field_path("lights", i, "color"), entry.get("color", "ffffffff"))
        shadows = entry.get("shadows", True)
        if not isinstance(shadows, bool):
            raise InputError(field_path("lights", i, "shadows"), shadows, "true or false")
        if values["range"] == 0 or not frame.inside(position):
            continue
        out.append(Light(position, float(values["range"]), colour, float(values["intensity"]), shadows))
    return out


def _image(value: Any) -> bytes | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError("image", type(value).__name__, "a base64 string")
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InputError("image", f"{len(value)} characters", "base64 of a PNG, JPEG or WebP image") from None
    png, jpeg = data.startswith(_PNG_MAGIC), data.startswith(b"\xff\xd8\xff")
    webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    if not (png or jpeg or webp):
        raise InputError("image", f"{len(data)} bytes starting {data[:8].hex()}", "a PNG, JPEG or WebP image")
    return data
