"""Everything a spec measures, in one call: token footprints (with reach and aura), template cells, path costs and
movement ranges. :func:`measure` is what the geometry route answers and what the renderer draws.

Errors name the entry that broke a rule (``tokens[3].cell``, ``paths[0].waypoints[2]``). Call
:func:`pipelines.overlay.spec.check` first: it applies the rules that need no geometry.
"""

from __future__ import annotations

from pipelines.overlay.grid import GridGeometry
from pipelines.overlay.paths import measure_path, movement, obstacles
from pipelines.overlay.spec import Geometry, OverlaySpec, TokenGeometry, field_path
from pipelines.overlay.templates import covered_cells
from pipelines.overlay.tokens import aura_outline, footprint, reach_cells, token_center

__all__ = ["measure"]


def measure(spec: OverlaySpec, geo: GridGeometry | None = None) -> Geometry:
    """The geometry of ``spec`` (``geo``: its grid's geometry, when the caller has it already).

    Raises:
        InputError: A token off the map, a waypoint that is blocked or cannot be reached, a template whose token
            is missing; ``param`` names it.
    """
    geo = geo or GridGeometry(spec.grid)
    blocking = obstacles(spec, geo)
    tokens = []
    for i, token in enumerate(spec.tokens):
        cells = footprint(token, geo, field_path("tokens", i, "cell"))
        reach = ()
        if token.reach_ft:
            reach = reach_cells(token, geo, token.reach_ft, spec.grid.diagonals, blocking.blocked, blocking.walls)
        aura = aura_outline(token, geo, token.aura_ft) if token.aura_ft else ()
        tokens.append(TokenGeometry(token.id, cells, token_center(token, geo), reach, aura))
    templates = tuple(covered_cells(tpl, spec, geo, field_path("templates", i)) for i, tpl in enumerate(spec.templates))
    paths = tuple(measure_path(path, spec, geo, blocking, field_path("paths", i)) for i, path in enumerate(spec.paths))
    moves = tuple(
        movement(
            query,
            spec,
            geo,
            obstacles(spec, geo, query.difficult) if query.difficult else blocking,
            field_path("movement", i),
        )
        for i, query in enumerate(spec.movement)
    )
    return Geometry(tuple(tokens), templates, paths, moves)
