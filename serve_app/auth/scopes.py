"""Which scope each route needs: one explicit table, checked against the app's routes by a test.

A route missing here is refused to every key (fail closed) and fails ``tests/serve_app/auth/test_scopes.py``, so a
new route cannot ship without a decision. ``None`` marks a route open to anyone: the health probes, and assets,
which are content-addressed (``/api/v2/assets/<sha256>.<ext>``): a capability URL that an ``<img src>`` can load
without a header, reachable only by someone who was given the image's document.

``admin`` grants every scope. The route group a rate limit counts in is the scope's group (:data:`GROUPS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["ADMIN", "GROUPS", "ROUTE_SCOPES", "SCOPES", "grants", "route_scope"]

GENERATE: Final = "images:generate"
READ: Final = "images:read"
DELETE: Final = "images:delete"
THEMES: Final = "themes:write"
ADMIN: Final = "admin"

SCOPES: Final = (GENERATE, READ, DELETE, THEMES, ADMIN)
"""Every scope a key may hold."""

GROUPS: Final[Mapping[str, str]] = {
    GENERATE: "generate",
    READ: "read",
    DELETE: "write",
    THEMES: "write",
    ADMIN: "admin",
}
"""The rate-limit group of each scope (``auth.limits.<group>_per_min``)."""

_V2 = "/api/v2/images"

ROUTE_SCOPES: Final[Mapping[tuple[str, str], str | None]] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/api/v2/assets/{name}"): None,
    # Jobs
    ("POST", f"{_V2}/generate"): GENERATE,
    ("POST", f"{_V2}/jobs"): GENERATE,
    ("GET", f"{_V2}/jobs"): READ,
    ("GET", f"{_V2}/jobs/{{job_id}}"): READ,
    ("DELETE", f"{_V2}/jobs/{{job_id}}"): GENERATE,  # cancelling one's own job is part of making it
    ("GET", f"{_V2}/jobs/{{job_id}}/events"): READ,
    # Themes (styles)
    ("GET", f"{_V2}/styles"): READ,
    ("POST", f"{_V2}/styles"): THEMES,
    ("GET", f"{_V2}/styles/{{ref}}"): READ,
    ("PUT", f"{_V2}/styles/{{ref}}"): THEMES,
    ("DELETE", f"{_V2}/styles/{{ref}}"): THEMES,
    ("GET", f"{_V2}/styles/{{ref}}/versions"): READ,
    ("POST", f"{_V2}/styles/{{ref}}/preview"): GENERATE,
    # Portraits, creatures, items and their subjects
    ("POST", f"{_V2}/portraits"): GENERATE,
    ("POST", f"{_V2}/creatures"): GENERATE,
    ("POST", f"{_V2}/items"): GENERATE,
    ("GET", f"{_V2}/subjects/{{key}}"): READ,
    # Maps
    ("POST", f"{_V2}/maps/campaign"): GENERATE,
    ("POST", f"{_V2}/maps/campaign/route"): READ,  # geometry only: nothing is drawn or stored
    ("POST", f"{_V2}/maps/campaign/measure"): READ,
    ("POST", f"{_V2}/maps/campaign/import"): GENERATE,
    ("GET", f"{_V2}/maps/{{map_id}}/export.geojson"): READ,
    ("POST", f"{_V2}/maps/tactical"): GENERATE,
    ("POST", f"{_V2}/maps/import"): GENERATE,
    ("GET", f"{_V2}/maps/{{map_id}}/overlay"): READ,
    ("PUT", f"{_V2}/maps/{{map_id}}/overlay"): GENERATE,
    ("GET", f"{_V2}/maps/{{map_id}}"): READ,
    ("GET", f"{_V2}/maps/{{map_id}}/export.uvtt"): READ,
    ("GET", f"{_V2}/maps/{{map_id}}/export.dd2vtt"): READ,
    # Overlays
    ("POST", f"{_V2}/overlays/geometry"): READ,  # geometry only
    ("POST", f"{_V2}/overlays"): GENERATE,
    ("GET", f"{_V2}/overlays/{{overlay_id}}"): READ,
    ("PUT", f"{_V2}/overlays/{{overlay_id}}"): GENERATE,
    ("POST", f"{_V2}/{{image_id}}/overlays"): GENERATE,
    # Enhancement and uploads
    ("POST", f"{_V2}/{{image_id}}/upscale"): GENERATE,
    ("POST", f"{_V2}/{{image_id}}/face-fix"): GENERATE,
    ("POST", f"{_V2}/{{image_id}}/restyle"): GENERATE,
    ("POST", f"{_V2}/uploads"): GENERATE,
    # Images
    ("GET", f"{_V2}/{{image_id}}"): READ,
    ("DELETE", f"{_V2}/{{image_id}}"): DELETE,
    ("GET", f"{_V2}/{{image_id}}/file"): READ,
    ("GET", f"{_V2}/{{image_id}}/versions"): READ,
    # OpenAI-compatible API (serve_app/api/compat/openai.py)
    ("POST", "/v1/images/generations"): GENERATE,
    ("POST", "/v1/images/edits"): GENERATE,
    ("GET", "/v1/models"): READ,
    ("GET", "/v1/images/files/{name}"): None,  # a signed, expiring URL: the signature is the capability
    # A1111-compatible API (serve_app/api/compat/a1111.py), each route also with a trailing slash. Reads, lists and
    # progress need images:read (so AIYA detects auth by a 401 on cmd-flags); POST /options too, since it keeps
    # nothing. Interrupt and skip cancel the caller's own jobs: part of making them. Gradio's /config and /login are
    # probed before any credentials and reveal nothing. HEAD / is a plain route outside this table (and the
    # OpenAPI document), open: route_scope looks HEAD up as GET, and there is no GET /.
    **{
        (method, f"/sdapi/v1/{path}{tail}"): scope
        for (method, path), scope in {
            ("POST", "txt2img"): GENERATE,
            ("POST", "img2img"): GENERATE,
            ("POST", "png-info"): READ,
            ("GET", "progress"): READ,
            ("POST", "interrupt"): GENERATE,
            ("POST", "skip"): GENERATE,
            ("GET", "options"): READ,
            ("POST", "options"): READ,
            ("GET", "sd-models"): READ,
            ("GET", "samplers"): READ,
            ("GET", "schedulers"): READ,
            ("GET", "upscalers"): READ,
            ("GET", "latent-upscale-modes"): READ,
            ("GET", "sd-vae"): READ,
            ("GET", "prompt-styles"): READ,
            ("GET", "face-restorers"): READ,
            ("GET", "loras"): READ,
            ("GET", "hypernetworks"): READ,
            ("GET", "embeddings"): READ,
            ("GET", "cmd-flags"): READ,
            ("GET", "scripts"): READ,
        }.items()
        for tail in ("", "/")
    },
    **{
        (method, f"/{path}{tail}"): None
        for method, path in (("GET", "config"), ("POST", "login"))
        for tail in ("", "/")
    },
    # Operators
    ("GET", "/api/v2/admin/generator/stats"): ADMIN,
    ("GET", "/api/v2/admin/cache/stats"): ADMIN,
    ("GET", "/api/v2/admin/zmq/stats"): ADMIN,
    ("GET", "/api/v2/admin/costs"): ADMIN,
    ("GET", "/api/v2/admin/remote/stats"): ADMIN,
}
"""``(method, route template) → scope`` for every route of the app; ``None``: open. ``HEAD`` falls back to
``GET``'s entry."""

_MISSING = object()


def route_scope(method: str, template: str) -> str | None:
    """The scope ``method`` on the route ``template`` needs (None: open).

    Raises:
        KeyError: The route is not in :data:`ROUTE_SCOPES` (callers refuse it).
    """
    scope = ROUTE_SCOPES.get((method, template), _MISSING)
    if scope is _MISSING and method == "HEAD":  # a GET route answers HEAD too
        scope = ROUTE_SCOPES.get(("GET", template), _MISSING)
    if scope is _MISSING:
        raise KeyError((method, template))
    return scope  # type: ignore[return-value]


def grants(held: frozenset[str] | set[str] | tuple[str, ...], needed: str) -> bool:
    """Whether a key holding ``held`` may use a route that needs ``needed`` (``admin`` grants everything)."""
    return needed in held or ADMIN in held
