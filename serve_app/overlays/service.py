"""Overlays as a resource: measure a spec, draw it on an image or a plain canvas, edit it in versions, and export
or import a battle map as UVTT. The HTTP routes (serve_app/api/overlays.py, maps.py) call this; so does the
tactical-map kind for its first version.

A render is a derived version of its background (``parent_id`` = the background); the same spec on the same
background is the same image (its request hash is the spec's canonical hash), so repeating a ``PUT`` adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.canonical import canonical_hash
from pipelines.errors import InputError
from pipelines.overlay.spec import Geometry, OverlaySpec
from serve_app.jobs.stages import Stages
from serve_app.overlays.models import OverlayBody, spec_json
from serve_app.overlays.store import OverlayRecord, OverlayStore
from serve_app.themes.base import ThemeNotFound

__all__ = ["OverlayService", "RenderedOverlay", "geometry_json", "render_hash"]

CANVAS = "#f4ecd8"
"""The plain canvas an overlay without an image is drawn on (parchment)."""


@dataclass(frozen=True)
class RenderedOverlay:
    """An overlay version and its render."""

    record: OverlayRecord
    png: bytes
    geometry: dict[str, Any]


def render_hash(background_id: str, body: dict[str, Any]) -> str:
    """The request hash of a render: what was drawn, on what."""
    return "ov:" + canonical_hash({"background": str(background_id), "spec": body})


class OverlayService:
    """Overlay CRUD and rendering.

    Args:
        stages: The shared steps (image reads, derivation, the overlay stage).
        store: Overlay rows.
    """

    def __init__(self, stages: Stages, store: OverlayStore) -> None:
        self._stages = stages
        self._store = store
        from serve_app.overlays.campaign import CampaignMaps

        self.campaign = CampaignMaps(stages, store)
        """Campaign maps: documents, edits, GeoJSON, routes."""

    @property
    def store(self) -> OverlayStore:
        return self._store

    async def spec(self, body: OverlayBody, background_id: str | None = None) -> OverlaySpec:
        """The pure spec of ``body``: colours it leaves out come from the background image's theme palette."""
        return body.to_spec(await self._palette(background_id), self._stages.default_rule)

    async def geometry(self, body: OverlayBody) -> dict[str, Any]:
        """What ``body`` covers, costs and reaches (no drawing), as the geometry document."""
        spec = await self.spec(body)
        geometry = await self._stage().measure(spec)
        return geometry_json(geometry, spec)

    async def create(self, body: OverlayBody, image_id: str | None, *, kind: str = "overlay") -> RenderedOverlay:
        """Draws ``body`` on ``image_id`` (None: a plain canvas) and records version 1 of a new overlay."""
        background_id = image_id if image_id is not None else await self._canvas(body)
        stored, render_id, png, geometry = await self._render(background_id, body, kind)
        record = await self._store.create(
            kind=kind, image_id=background_id, spec=stored, geometry=geometry, result_image_id=render_id
        )
        return RenderedOverlay(record, png, geometry)

    async def update(
        self, overlay_id: str, body: OverlayBody, *, expected_version: int | None = None, kind: str | None = None
    ) -> RenderedOverlay:
        """Re-renders the overlay's background with ``body`` as its next version.

        Raises:
            OverlayNotFound: No such overlay (of ``kind``).
            OverlayConflict: ``expected_version`` is stale.
        """
        current = await self._store.get(overlay_id, kind=kind)
        stored, render_id, png, geometry = await self._render(str(current.image_id), body, current.kind)
        record = await self._store.update(
            overlay_id, spec=stored, geometry=geometry, result_image_id=render_id, expected_version=expected_version
        )
        return RenderedOverlay(record, png, geometry)

    async def _render(
        self, background_id: str, body: OverlayBody, kind: str
    ) -> tuple[dict[str, Any], str, bytes, dict[str, Any]]:
        """Draws ``body`` on ``background_id`` as a derived version: the stored spec, the render's id and PNG, and
        the geometry document."""
        spec = await self.spec(body, background_id)
        stored = body.to_json()
        render_id, rendered = await self._stages.render_overlay(
            background_id, spec, kind=kind, request_hash=render_hash(background_id, stored)
        )
        return stored, render_id, rendered.png, geometry_json(rendered.geometry, spec)

    async def get(self, overlay_id: str, *, kind: str | None = None) -> OverlayRecord:
        return await self._store.get(overlay_id, kind=kind)

    async def uvtt(self, map_id: str, *, image: str = "background") -> dict[str, Any]:
        """The map as a Universal VTT document (format 0.3), with its clean background (``image="render"``: the
        overlaid render) embedded.

        Raises:
            OverlayNotFound: No such map.
            InputError: A hex map (UVTT carries square grids only), or ``image`` is neither choice.
        """
        from pipelines.overlay.export.uvtt import to_uvtt

        if image not in ("background", "render"):
            raise InputError("image", image, "background or render")
        record = await self._store.get(map_id, kind="tactical_map")
        image_id = (
            record.image_id if image == "background" or record.result_image_id is None else record.result_image_id
        )
        _, png = await self._stages.read_image(str(image_id))
        spec = OverlayBody.model_validate(record.spec).to_spec(default_rule=self._stages.default_rule)
        return to_uvtt(spec, png, baked_lighting=True)

    async def import_uvtt(self, data: bytes, *, feet_per_cell: float = 5.0) -> tuple[dict[str, Any], str | None]:
        """Reads a .dd2vtt / .df2vtt / .uvtt file into an overlay spec (grid, walls, doors, windows, lights) and
        stores its embedded image; answers the spec's JSON and the image id (None when the file has no image)."""
        from pipelines.overlay.export.uvtt import from_uvtt

        spec, image = from_uvtt(data, feet_per_cell=feet_per_cell)
        image_id = None if image is None else await self._stages.store_upload(image, "image", kind="uvtt_import")
        return spec_json(spec), image_id

    async def _canvas(self, body: OverlayBody) -> str:
        """A plain canvas of the grid's size, stored once per size (the background of an overlay without art)."""
        from PIL import Image

        from pipelines import encode
        from pipelines.overlay.grid import GridGeometry
        from pipelines.overlay.spec import check

        spec = body.to_spec(default_rule=self._stages.default_rule)
        check(spec, self._stages.overlay_limits)
        geo = GridGeometry(spec.grid)
        width, height = geo.width_px, geo.height_px
        png = encode.encode(Image.new("RGB", (width, height), CANVAS), "png")
        return await self._stages.store_image(
            png, width=width, height=height, kind="overlay_canvas", request_hash=f"canvas:{width}x{height}:{CANVAS}"
        )

    async def _palette(self, image_id: str | None) -> tuple[str, ...]:
        """The palette of the theme (at the version) the image was made with; () when it has none."""
        if image_id is None or self._stages.themes is None:
            return ()
        record = await self._stages.images.get(image_id)
        if record.theme_id is None:
            return ()
        ref = str(record.theme_id) if record.theme_version is None else f"{record.theme_id}@{record.theme_version}"
        try:
            theme = await self._stages.themes.resolve(ref)
        except (ThemeNotFound, InputError):
            return ()
        return tuple(theme.style.palette)

    def _stage(self) -> Any:
        if self._stages.overlay is None:
            raise InputError("overlay", None, "omitted: this service has no overlay stage")
        return self._stages.overlay


def geometry_json(geometry: Geometry, spec: OverlaySpec) -> dict[str, Any]:
    """The geometry document the API answers: cells as ``[col, row]``, points as ``{x, y}``, feet rounded to 1e-6;
    on hex grids every cell list has an ``axial`` twin of ``[q, r]``."""
    axial = _axial(spec)

    def cells(items: Any) -> list[list[int]]:
        return [[int(c), int(r)] for c, r in items]

    def with_axial(doc: dict[str, Any], key: str, items: Any) -> dict[str, Any]:
        if axial is not None:
            doc[f"{key}_axial"] = [list(axial(cell)) for cell in items]
        return doc

    tokens = []
    for t in geometry.tokens:
        doc: dict[str, Any] = {"id": t.id, "cells": cells(t.cells), "center": {"x": t.center[0], "y": t.center[1]}}
        with_axial(doc, "cells", t.cells)
        if t.reach:
            doc["reach"] = cells(t.reach)
        tokens.append(doc)
    templates = [
        with_axial({"id": t.id, "cells": cells(t.cells), "count": len(t.cells), "rule": t.rule}, "cells", t.cells)
        for t in geometry.templates
    ]
    paths = [
        with_axial(
            {
                "id": p.id,
                "cost_ft": round(p.cost_ft, 6),
                "cells": cells(p.cells),
                "step_costs_ft": [round(c, 6) for c in p.step_costs_ft],
            },
            "cells",
            p.cells,
        )
        for p in geometry.paths
    ]
    movement = []
    for m in geometry.movement:
        reachable = []
        for cell, cost in m.reachable:
            entry: dict[str, Any] = {"cell": [int(cell[0]), int(cell[1])], "cost_ft": round(cost, 6)}
            if axial is not None:
                entry["axial"] = list(axial(cell))
            if m.dash:
                entry["band"] = "walk" if cost <= m.speed_ft + 1e-9 else "dash"
            reachable.append(entry)
        movement.append({"id": m.id, "speed_ft": m.speed_ft, "reachable": reachable})
    return {"tokens": tokens, "templates": templates, "paths": paths, "movement": movement}


def _axial(spec: OverlaySpec) -> Any:
    if not spec.grid.is_hex:
        return None
    from pipelines.overlay.grid import offset_to_axial

    offset = spec.grid.offset
    return lambda cell: offset_to_axial((int(cell[0]), int(cell[1])), offset)
