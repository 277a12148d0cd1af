"""Themes (the seed API calls them styles): ``/api/v2/images/styles``.

List (built-in and user themes, by kind, a page at a time), read (raw and resolved), create, update (a new
immutable version), soft-delete, list versions, and preview what a theme makes of a sample request.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from pipelines.styles import Style, theme_to_dict
from serve_app.api.deps import EdgeDep, ThemesDep
from serve_app.api.previews import preview
from serve_app.api.protocol.themes import (
    PreviewRequest,
    PreviewResponse,
    ThemeBody,
    ThemeList,
    ThemeResponse,
    ThemeUpdate,
    ThemeVersionList,
    ThemeVersionResponse,
)
from serve_app.errors import BODY_ERRORS, InvalidRequest, error_responses
from serve_app.themes.base import ThemeRecord

__all__ = ["STYLES_PREFIX", "resolved_json", "router"]

STYLES_PREFIX = "/api/v2/images/styles"

router = APIRouter(prefix=STYLES_PREFIX, tags=["styles"])


def resolved_json(style: Style) -> dict[str, Any]:
    """A resolved style as JSON (what a request composed with it gets)."""
    return {
        "prompt_template": style.prompt_template,
        "negative_prompt": style.negative_prompt,
        "fragments": list(style.fragments),
        "negative_fragments": list(style.negative_fragments),
        "medium": style.medium,
        "lighting": style.lighting,
        "palette": list(style.palette),
        "settings": dict(style.settings),
        "sizes": {key: list(size) for key, size in style.sizes.items()},
        "kinds": None if style.kinds is None else list(style.kinds),
        "variations": list(style.variations),
        "variation": style.variation,
        "consistency": {
            "seed_base": style.consistency.seed_base,
            "lock_palette": style.consistency.lock_palette,
            "reference_image": style.consistency.reference_image,
            "reference_strength": style.consistency.reference_strength,
        },
        "moderation": {"allow": list(style.moderation.allow), "block": list(style.moderation.block)},
    }


def _response(record: ThemeRecord, resolved: Style | None = None) -> ThemeResponse:
    base = f"{STYLES_PREFIX}/{record.id}"
    return ThemeResponse(
        id=str(record.id),
        name=record.name,
        version=record.version,
        builtin=record.builtin,
        pack=record.pack,
        raw=theme_to_dict(record.data),
        resolved=None if resolved is None else resolved_json(resolved),
        created_at=record.created_at,
        updated_at=record.updated_at,
        deleted_at=record.deleted_at,
        links={"self": base, "versions": f"{base}/versions", "preview": f"{base}/preview"},
    )


@router.get("", summary="List themes", response_model=ThemeList, responses=error_responses(422))
async def list_themes(
    themes: ThemesDep,
    kind: Annotated[str | None, Query(max_length=32, description="Only themes supporting this kind.")] = None,
    builtin: Annotated[bool | None, Query(description="Only built-in (true) or only user (false) themes.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=128, description="`next_cursor` of the previous page.")] = None,
) -> ThemeList:
    page, next_cursor = await themes.list(kind=kind, cursor=cursor, limit=limit, builtin=builtin)
    return ThemeList(items=[_response(r) for r in page], next_cursor=next_cursor)


@router.post(
    "",
    summary="Create a theme",
    status_code=201,
    response_model=ThemeResponse,
    responses=error_responses(*BODY_ERRORS, 409),
)
async def create_theme(body: ThemeBody, themes: ThemesDep) -> JSONResponse:
    """Validates the theme (its chain resolves, settings and sizes fit the model, the text passes the content
    policy) and stores it as version 1."""
    record = await themes.create(body.to_data(body.name) | {"name": body.name})
    resolved = await themes.resolve(str(record.id))
    out = _response(record, resolved.style)
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers={"Location": out.links["self"]})


@router.get("/{ref}", summary="A theme, raw and resolved", response_model=ThemeResponse, responses=error_responses(404))
async def get_theme(
    ref: str,
    themes: ThemesDep,
    variation: Annotated[str | None, Query(max_length=64, description="Resolve with this variation.")] = None,
) -> ThemeResponse:
    """`ref` is an id or a name, optionally pinned to a version: `ink-and-wash@2`."""
    record = await themes.get(ref)
    resolved = await themes.resolve(ref, variation=variation)
    return _response(record, resolved.style)


@router.put(
    "/{ref}",
    summary="Change a theme (a new version)",
    response_model=ThemeResponse,
    responses=error_responses(*BODY_ERRORS, 403, 404, 409),
)
async def update_theme(ref: str, body: ThemeUpdate, themes: ThemesDep) -> ThemeResponse:
    """Writes the whole theme as a new immutable version; earlier versions stay readable and usable
    (`name@1`). Built-in themes are read-only (403)."""
    current = await themes.get(ref)
    record = await themes.update(ref, body.to_data(current.name))
    resolved = await themes.resolve(str(record.id))
    return _response(record, resolved.style)


@router.delete(
    "/{ref}",
    summary="Delete a theme (soft)",
    response_model=ThemeResponse,
    responses=error_responses(403, 404, 409),
)
async def delete_theme(
    ref: str,
    themes: ThemesDep,
    force: Annotated[bool, Query(description="Delete although jobs used it recently.")] = False,
) -> ThemeResponse:
    """Refused (409) while other themes inherit from it, or (without `force`) when a job used it in the last
    `themes.recent_jobs_days` days. Its versions stay, so old jobs remain explainable."""
    return _response(await themes.delete(ref, force=force))


@router.get(
    "/{ref}/versions", summary="A theme's versions", response_model=ThemeVersionList, responses=error_responses(404)
)
async def theme_versions(ref: str, themes: ThemesDep) -> ThemeVersionList:
    versions = await themes.versions(ref)
    record = await themes.get(ref, include_deleted=True)
    items = [
        ThemeVersionResponse(version=v.version, raw=theme_to_dict(v.data), created_at=v.created_at) for v in versions
    ]
    return ThemeVersionList(id=str(record.id), name=record.name, items=items)


@router.post(
    "/{ref}/preview",
    summary="What the theme makes of a sample request (nothing is generated)",
    response_model=PreviewResponse,
    responses=error_responses(*BODY_ERRORS, 404),
)
async def preview_theme(ref: str, body: PreviewRequest, edge: EdgeDep) -> PreviewResponse:
    """Composes a sample request of `kind` with the theme (and `variation`) exactly as a job would: the
    prompts and settings it would run, and the validation warnings (prompt fragments past the text encoder's
    77-token window, ...). Moderation applies as for a real request."""
    if body.kind not in edge.registry:
        raise InvalidRequest(f"kind={body.kind!r} is not allowed: one of {list(edge.registry.names)}", param="kind")
    return await preview(edge, ref, body)
