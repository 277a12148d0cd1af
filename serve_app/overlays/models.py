"""The overlay spec as JSON: the HTTP bodies of the overlay and map routes, and the form overlay rows and map jobs
keep. ``to_spec()`` builds the pure :class:`pipelines.overlay.spec.OverlaySpec`, whose
:func:`~pipelines.overlay.spec.check` names the first field that breaks a rule (``tokens[3].cell``).

Points are ``{"x": .., "y": ..}`` objects in grid units (``[x, y]`` pairs are accepted too); cells are
``[col, row]``. :func:`spec_json` turns a spec back into this form (for a UVTT import, or a stored row).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from pipelines.overlay import spec as s

__all__ = [
    "AreaBody",
    "FeatureBody",
    "FogBody",
    "GridBody",
    "LightBody",
    "MarkerBody",
    "MovementBody",
    "OverlayBody",
    "PathBody",
    "PortalBody",
    "StyleBody",
    "TemplateBody",
    "TerrainBody",
    "TokenBody",
    "spec_json",
]


def _point_in(value: Any) -> Any:
    if isinstance(value, Mapping) and set(value) == {"x", "y"}:
        return (value["x"], value["y"])
    return value


PointJson = Annotated[
    tuple[float, float],
    BeforeValidator(_point_in),
    PlainSerializer(lambda p: {"x": p[0], "y": p[1]}, return_type=dict),
    Field(description="A point {x, y} in grid units ((0, 0) is the map's top-left corner, y grows down)."),
]
CellJson = Annotated[tuple[int, int], Field(description="A cell [col, row].")]
Cells = Annotated[list[CellJson], Field(max_length=40000)]
Colour = Annotated[str, Field(max_length=9, description="#RRGGBB")]
_ID = Field(..., min_length=1, max_length=64)
_LABEL = Field(None, max_length=80)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GridBody(_Body):
    """A square or hex grid. Hex grids have ``cols`` and ``rows`` too."""

    type: Literal["square", "hex"] = "square"
    cols: int = Field(..., ge=1, le=1000)
    rows: int = Field(..., ge=1, le=1000)
    cell_px: int = Field(70, description="Square grids: pixels per cell.")
    size_px: float = Field(40.0, description="Hex grids: pixels from a hex's centre to a corner.")
    orientation: Literal["pointy", "flat"] = "pointy"
    offset: str | None = Field(None, description="odd-r | even-r (pointy), odd-q | even-q (flat); odd-* by default.")
    feet_per_cell: float = 5.0
    diagonals: str = Field("5-5-5", description="5-5-5 | 5-10-5 | 10-5-10 | euclidean | manhattan | exact")
    difficult: Cells = Field(default_factory=list, description="Cells whose entry costs double.")
    blocked: Cells = Field(default_factory=list, description="Cells no path or movement enters.")

    def to_spec(self) -> s.Grid:
        offset = self.offset or ("odd-r" if self.orientation == "pointy" else "odd-q")
        return s.Grid(
            type=self.type,
            cols=self.cols,
            rows=self.rows,
            cell_px=self.cell_px,
            size_px=self.size_px,
            orientation=self.orientation,
            offset=offset,
            feet_per_cell=self.feet_per_cell,
            diagonals=self.diagonals,
            difficult=frozenset(self.difficult),
            blocked=frozenset(self.blocked),
        )


class TokenBody(_Body):
    id: str = _ID
    cell: CellJson = Field(..., description="Its top-left cell (hex: its anchor hex).")
    size: str = Field("medium", description="tiny | small | medium | large | huge | gargantuan")
    label: str | None = _LABEL
    color: Colour | None = None
    image_id: str | None = Field(None, max_length=64, description="An image id: its art, cropped round.")
    aura_ft: float | None = Field(None, description="An aura measured from the footprint's edge.")
    reach_ft: float | None = Field(None, description="Reach measured from the footprint's edge.")

    def to_spec(self) -> s.Token:
        return s.Token(**_fields(self))


class TemplateBody(_Body):
    id: str = _ID
    shape: str = Field(..., description="sphere | cylinder | cone | line | cube | emanation")
    distance_ft: float = Field(..., description="Radius, length (cone, line) or side (cube).")
    origin: PointJson | None = None
    direction: float = Field(0.0, description="Degrees, 0 = east, clockwise on screen.")
    width_ft: float = Field(5.0, description="Lines: total width.")
    angle: float = Field(s.CONE_ANGLE, description="Cones: full opening in degrees (5e: 53.13).")
    anchor: str = Field("corner", description="Cubes: corner | face.")
    cone_end: str = Field("flat", description="Cones: flat (5e) | round (Foundry).")
    from_token: str | None = Field(None, max_length=64, description="Measure from this token's footprint edge.")
    rule: str | None = Field(None, description="center | any | half | token; the spec's default_rule when null.")
    color: Colour | None = None
    label: str | None = _LABEL

    def to_spec(self) -> s.Template:
        return s.Template(**_fields(self))


class PathBody(_Body):
    id: str = _ID
    waypoints: list[CellJson] = Field(..., max_length=1000)
    token: str | None = Field(None, max_length=64)
    diagonals: str | None = None
    color: Colour | None = None
    label: str | None = _LABEL

    def to_spec(self) -> s.PathSpec:
        return s.PathSpec(**{**_fields(self), "waypoints": tuple(self.waypoints)})


class MovementBody(_Body):
    id: str = _ID
    token: str = Field(..., max_length=64)
    speed_ft: float
    diagonals: str | None = None
    difficult: Cells = Field(default_factory=list)
    dash: bool = Field(False, description="Also answer cells up to twice the speed.")

    def to_spec(self) -> s.MovementQuery:
        return s.MovementQuery(**{**_fields(self), "difficult": frozenset(self.difficult)})


class MarkerBody(_Body):
    id: str = _ID
    kind: str = Field("pin", description="pin | icon | text")
    at: PointJson
    text: str | None = _LABEL
    icon: str | None = Field(None, max_length=32)
    color: Colour | None = None

    def to_spec(self) -> s.Marker:
        return s.Marker(**_fields(self))


class FogBody(_Body):
    hidden: Cells = Field(default_factory=list, description="Cells painted over (a player's view).")
    color: Colour = "#000000"
    opacity: float = 1.0

    def to_spec(self) -> s.Fog:
        return s.Fog(hidden=frozenset(self.hidden), color=self.color, opacity=self.opacity)


class PortalBody(_Body):
    a: PointJson
    b: PointJson
    closed: bool | None = Field(None, description="Doors: closed by default; windows: open by default.")

    def to_spec(self, default: bool) -> s.Portal:
        return s.Portal(self.a, self.b, default if self.closed is None else self.closed)


class AreaBody(_Body):
    kind: str = Field(..., max_length=32, description="water | difficult | pit | lava | vegetation | rubble | ...")
    cells: Cells = Field(default_factory=list)
    polygon: list[PointJson] = Field(default_factory=list, max_length=1000)

    def to_spec(self) -> s.Area:
        return s.Area(self.kind, frozenset(self.cells), tuple(self.polygon))


class FeatureBody(_Body):
    kind: str = Field(..., max_length=32, description="tree | pillar | rock | statue | chest | table | ...")
    cell: CellJson
    blocks_sight: bool | None = None

    def to_spec(self) -> s.Feature:
        return s.Feature(self.kind, self.cell, self.blocks_sight)


class TerrainBody(_Body):
    walls: list[list[PointJson]] = Field(default_factory=list, max_length=2000, description="Polylines of points.")
    doors: list[PortalBody] = Field(default_factory=list, max_length=500)
    windows: list[PortalBody] = Field(default_factory=list, max_length=500)
    areas: list[AreaBody] = Field(default_factory=list, max_length=500)
    features: list[FeatureBody] = Field(default_factory=list, max_length=2000)

    def to_spec(self) -> s.Terrain:
        return s.Terrain(
            walls=tuple(tuple(w) for w in self.walls),
            doors=tuple(d.to_spec(True) for d in self.doors),
            windows=tuple(w.to_spec(False) for w in self.windows),
            areas=tuple(a.to_spec() for a in self.areas),
            features=tuple(f.to_spec() for f in self.features),
        )


class LightBody(_Body):
    position: PointJson
    range: float = Field(..., description="Radius in cells.")
    color: str = Field("#ffffff", max_length=9, description="#RRGGBB or 8-digit ARGB.")
    intensity: float = 1.0
    shadows: bool = True

    def to_spec(self) -> s.Light:
        return s.Light(**_fields(self))


class StyleBody(_Body):
    """Colours left out come from the image's theme palette, else limner's defaults."""

    palette: list[Colour] | None = Field(None, max_length=32)
    grid_color: Colour | None = None
    grid_opacity: float | None = None
    grid_width_px: float | None = None
    template_opacity: float | None = None
    font_px: float | None = None

    def to_spec(self, theme_palette: tuple[str, ...] = ()) -> s.OverlayStyle:
        given = {k: v for k, v in _fields(self).items() if v is not None}
        palette = given.pop("palette", None) or list(theme_palette)
        if palette:
            given["palette"] = tuple(palette)
        return s.OverlayStyle(**given)


class OverlayBody(_Body):
    """What an overlay measures and draws."""

    grid: GridBody
    tokens: list[TokenBody] = Field(default_factory=list, max_length=500)
    templates: list[TemplateBody] = Field(default_factory=list, max_length=500)
    paths: list[PathBody] = Field(default_factory=list, max_length=500)
    movement: list[MovementBody] = Field(default_factory=list, max_length=100)
    markers: list[MarkerBody] = Field(default_factory=list, max_length=500)
    fog: FogBody | None = None
    terrain: TerrainBody | None = None
    lights: list[LightBody] = Field(default_factory=list, max_length=500)
    layers: list[str] | None = Field(
        None,
        description="Layers to draw (grid, coordinates, areas, walls, movement, reach, templates, paths, "
        "tokens, auras, markers, fog, legend); null: all but coordinates, areas, walls and legend.",
    )
    style: StyleBody | None = None
    default_rule: str | None = Field(
        None, description="The cell rule of templates that name none; null: the service's (`overlay.default_rule`)."
    )

    def to_spec(self, theme_palette: tuple[str, ...] = (), default_rule: str = "center") -> s.OverlaySpec:
        """The pure spec: colours the body leaves out come from ``theme_palette`` when given, the rule of
        templates that name none from the body's ``default_rule``, else ``default_rule``."""
        return s.OverlaySpec(
            grid=self.grid.to_spec(),
            tokens=tuple(t.to_spec() for t in self.tokens),
            templates=tuple(t.to_spec() for t in self.templates),
            paths=tuple(p.to_spec() for p in self.paths),
            movement=tuple(m.to_spec() for m in self.movement),
            markers=tuple(m.to_spec() for m in self.markers),
            fog=None if self.fog is None else self.fog.to_spec(),
            terrain=s.Terrain() if self.terrain is None else self.terrain.to_spec(),
            lights=tuple(light.to_spec() for light in self.lights),
            layers=None if self.layers is None else frozenset(self.layers),
            style=(self.style or StyleBody()).to_spec(theme_palette),
            default_rule=self.default_rule or default_rule,
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form (what a row keeps and ``GET`` answers)."""
        return self.model_dump(mode="json", exclude_none=True)


def spec_json(spec: s.OverlaySpec) -> dict[str, Any]:
    """A spec in the JSON form of :class:`OverlayBody` (validated by it), for specs made in code (UVTT import)."""
    terrain = spec.terrain
    body = {
        "grid": {
            **_plain(spec.grid),
            "difficult": sorted(spec.grid.difficult),
            "blocked": sorted(spec.grid.blocked),
        },
        "tokens": [_plain(t) for t in spec.tokens],
        "templates": [_plain(t) for t in spec.templates],
        "paths": [_plain(p) for p in spec.paths],
        "movement": [{**_plain(m), "difficult": sorted(m.difficult)} for m in spec.movement],
        "markers": [_plain(m) for m in spec.markers],
        "fog": None if spec.fog is None else {**_plain(spec.fog), "hidden": sorted(spec.fog.hidden)},
        "terrain": {
            "walls": [list(w) for w in terrain.walls],
            "doors": [_plain(d) for d in terrain.doors],
            "windows": [_plain(w) for w in terrain.windows],
            "areas": [{**_plain(a), "cells": sorted(a.cells)} for a in terrain.areas],
            "features": [_plain(f) for f in terrain.features],
        },
        "lights": [_plain(light) for light in spec.lights],
        "layers": None if spec.layers is None else sorted(spec.layers),
        "style": _plain(spec.style),
        "default_rule": spec.default_rule,
    }
    return OverlayBody.model_validate(body).to_json()


def _fields(model: BaseModel) -> dict[str, Any]:
    """A model's fields as they are (points stay tuples; ``model_dump`` would serialise them to ``{x, y}``)."""
    return {name: getattr(model, name) for name in type(model).model_fields}


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
