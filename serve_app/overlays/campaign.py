"""Campaign maps as a resource: their document, the next version of their layers on the same art, the GeoJSON
export and import, and route planning over a map's terrain and roads.

A campaign map is an overlay of kind ``campaign_map`` (made by the kind in serve_app/jobs/kinds/campaign.py): its
spec is the campaign JSON, its ``geometry`` the measured data (route miles and days, areas, holders, the party's
days). An edit re-draws the clean art with the new spec as a derived version of it, so the art is never
regenerated and its bytes never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.errors import InputError
from serve_app.jobs.kinds.campaign import campaign_render_hash
from serve_app.jobs.stages import Stages
from serve_app.overlays.store import OverlayRecord, OverlayStore

__all__ = ["KIND", "CampaignMaps", "RenderedCampaign"]

KIND = "campaign_map"


@dataclass(frozen=True)
class RenderedCampaign:
    """A campaign map version and its render."""

    record: OverlayRecord
    png: bytes


class CampaignMaps:
    """Campaign map documents, edits, GeoJSON and routes.

    Args:
        stages: The shared steps (image reads, derivation, the overlay stage).
        store: Overlay rows (campaign maps are overlays of kind ``campaign_map``).
    """

    def __init__(self, stages: Stages, store: OverlayStore) -> None:
        self._stages = stages
        self._store = store

    async def get(self, map_id: str) -> OverlayRecord:
        """The map. Raises ``OverlayNotFound``."""
        return await self._store.get(map_id, kind=KIND)

    async def update(
        self, map_id: str, doc: dict[str, Any], *, expected_version: int | None = None
    ) -> RenderedCampaign:
        """Re-draws the map's art with ``doc`` (the whole campaign spec) as version n + 1.

        Raises:
            OverlayNotFound: No such campaign map.
            OverlayConflict: ``expected_version`` is stale.
            InputError: The spec breaks a rule (``param`` names the field).
        """
        from pipelines.overlay.campaign import parse_campaign, spec_to_json

        current = await self._store.get(map_id, kind=KIND)
        spec = parse_campaign(doc)
        old = parse_campaign(current.spec)
        if (spec.width, spec.height) != (old.width, old.height):
            raise InputError("canvas", [spec.width, spec.height], f"the map's canvas, {old.width} x {old.height}")
        stored = spec_to_json(spec)
        background_id = str(current.image_id)
        digest = campaign_render_hash(background_id, stored)
        render_id, rendered = await self._stages.render_campaign(background_id, stored, request_hash=digest)
        record = await self._store.update(
            map_id, spec=stored, geometry=rendered.data, result_image_id=render_id, expected_version=expected_version
        )
        return RenderedCampaign(record, rendered.png)

    async def geojson(self, map_id: str) -> dict[str, Any]:
        """The map's layers as one GeoJSON FeatureCollection (pixel CRS, ``limner:crs``)."""
        record = await self.get(map_id)
        return await self._thread(_geojson, record.spec)

    async def import_geojson(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A GeoJSON FeatureCollection (as :meth:`geojson` writes it) read back into a campaign spec, checked."""
        return await self._thread(_import, doc)

    async def measure(self, doc: dict[str, Any]) -> dict[str, Any]:
        """What a spec measures, without drawing (a 422 names a bad field)."""
        return await self._overlay().campaign_measure(doc)

    async def route(
        self, map_id: str, start: str | list[float], goal: str | list[float], *, pace: str, mode: str
    ) -> dict[str, Any]:
        """The cheapest route on the map between two POIs (by name) or points (``[x, y]``).

        Raises:
            OverlayNotFound: No such campaign map.
            InputError: An unknown POI, a point off the canvas, no way between them for ``mode``.
        """
        from pipelines.overlay.campaign import parse_campaign

        record = await self.get(map_id)
        spec = parse_campaign(record.spec)
        a = _endpoint(spec, start, "from")
        b = _endpoint(spec, goal, "to")
        plan = await self._overlay().campaign_route(record.spec, a, b, pace, mode)
        return {**plan, "from": start, "to": goal, "pace": pace, "mode": mode}

    def _overlay(self) -> Any:
        if self._stages.overlay is None:
            raise InputError("overlay", KIND, "omitted: this service has no overlay stage")
        return self._stages.overlay

    @staticmethod
    async def _thread(fn: Any, *args: Any) -> Any:
        import asyncio

        return await asyncio.to_thread(fn, *args)


def _endpoint(spec: Any, value: str | list[float], where: str) -> tuple[float, float]:
    if isinstance(value, str):
        poi = spec.poi(value)
        if poi is None:
            names = ", ".join(sorted(p.name for p in spec.pois)) or "none on this map"
            raise InputError(where, value, f"the name of a POI ({names}) or an [x, y] point")
        return (poi.x, poi.y)
    if len(value) != 2:
        raise InputError(where, value, "the name of a POI or an [x, y] point")
    return (float(value[0]), float(value[1]))  # plan_route checks it lies on the canvas


def _geojson(doc: dict[str, Any]) -> dict[str, Any]:
    from pipelines.overlay.campaign import parse_campaign
    from pipelines.overlay.campaign_measure import measure_campaign
    from pipelines.overlay.export.geojson import to_geojson

    spec = parse_campaign(doc)
    return to_geojson(spec, measure_campaign(spec))


def _import(doc: dict[str, Any]) -> dict[str, Any]:
    from pipelines.overlay.campaign import parse_campaign, spec_to_json
    from pipelines.overlay.export.geojson import from_geojson

    return spec_to_json(parse_campaign(from_geojson(doc)))
