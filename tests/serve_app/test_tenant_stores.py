"""Tenant isolation in the row stores, on SQLite and PostgreSQL (serve_app/auth/tenant.py).

Scoped to tenant ``b``, what tenant ``a`` made is not found (the same not-found as a missing id), lists are empty,
writes refuse it, and the same natural key (an idempotency key, a theme name, a subject key) is ``b``'s own; unscoped,
everything is visible. Real databases, no mocks.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pipelines.styles import theme_from_dict
from serve_app.auth.tenant import tenant_scope
from serve_app.db import Image
from serve_app.images import ImageNotFound, ImageRecord, ImageRepository
from serve_app.jobs import IdempotencyConflict, JobNotFound, JobStatus, SqlJobStore
from serve_app.overlays.store import OverlayNotFound, OverlayStore
from serve_app.subjects import SubjectNotFound, SubjectStore
from serve_app.themes.base import ThemeNotFound, ThemeReadOnly
from serve_app.themes.service import ThemeService


def _image(request_hash: str | None = "h1", **fields: Any) -> Image:
    return Image(
        kind=fields.pop("kind", "image"),
        width=8,
        height=8,
        content_hash="c" * 64,
        request_hash=request_hash,
        settings={},
        **fields,
    )


# -- jobs ---------------------------------------------------------------------------------------------------------


async def test_a_tenant_never_sees_another_tenants_jobs(engine: AsyncEngine) -> None:
    store = SqlJobStore(engine, progress_interval_s=0)
    with tenant_scope("a"):
        a = await store.submit("generate", {"n": 1}, idempotency_key="key-1")
    assert a.tenant == "a"
    with tenant_scope("b"):
        for call in (store.get, store.cancel, store.events_since):
            with pytest.raises(JobNotFound):
                await call(a.id)
        with pytest.raises(JobNotFound):
            await store.append_event(a.id, "note", {})
        assert (await store.list()).items == []
        assert (await store.counts())[JobStatus.QUEUED] == 0
        assert await store.cancel_where() == []
        # The same key in b makes b's own job, which the key then names in b.
        b = await store.submit("generate", {"n": 1}, idempotency_key="key-1")
        assert b.id != a.id and b.tenant == "b"
        assert (await store.submit("generate", {"n": 1}, idempotency_key="key-1")).id == b.id
        with pytest.raises(IdempotencyConflict):
            await store.submit("generate", {"n": 2}, idempotency_key="key-1")
        assert [j.id for j in (await store.list()).items] == [b.id]
    with tenant_scope("a"):
        # b's cancel and clear touched nothing of a's.
        assert (await store.get(a.id)).status is JobStatus.QUEUED
        assert (await store.submit("generate", {"n": 1}, idempotency_key="key-1")).id == a.id
        assert [j.id for j in (await store.list()).items] == [a.id]
        assert [e.type for e in await store.events_since(a.id)] == ["queued"]
    # Unscoped: both, each with its tenant; an unscoped submit is the open tenant's, with its own keys.
    assert {j.id: j.tenant for j in (await store.list()).items} == {a.id: "a", b.id: "b"}
    assert (await store.counts())[JobStatus.QUEUED] == 2
    opened = await store.submit("generate", {"n": 1}, idempotency_key="key-1")
    assert opened.tenant == "" and opened.id not in {a.id, b.id}


async def test_cancel_where_clears_only_the_scoped_tenants_queue(engine: AsyncEngine) -> None:
    store = SqlJobStore(engine, progress_interval_s=0)
    with tenant_scope("a"):
        a = await store.submit("generate", {"n": 1})
    with tenant_scope("b"):
        b = await store.submit("generate", {"n": 2})
        assert await store.cancel_where() == [b.id]
    assert (await store.get(a.id)).status is JobStatus.QUEUED
    assert (await store.get(b.id)).status is JobStatus.CANCELLED


async def test_a_claimed_job_is_written_in_its_own_scope_only(engine: AsyncEngine) -> None:
    store = SqlJobStore(engine, progress_interval_s=0)
    with tenant_scope("a"):
        job = await store.submit("generate", {"n": 1})
    (claimed,) = await store.claim("runner", lease_s=30)  # the claim serves every tenant
    assert claimed.id == job.id and claimed.tenant == "a"
    with tenant_scope("b"), pytest.raises(JobNotFound):
        await store.complete(job.id, "runner")
    with tenant_scope("a"):
        assert (await store.complete(job.id, "runner")).status is JobStatus.SUCCEEDED


# -- images -------------------------------------------------------------------------------------------------------


async def test_a_tenant_never_sees_another_tenants_images(engine: AsyncEngine) -> None:
    images = ImageRepository(engine)
    with tenant_scope("a"):
        root, created = await images.find_or_create(_image())
        child, _ = await images.find_or_create(_image("h2", parent_id=root.id, version=2))
    assert created and root.tenant == child.tenant == "a"
    with tenant_scope("b"):
        for call in (images.get, images.versions, images.soft_delete):
            with pytest.raises(ImageNotFound):
                await call(root.id)
        assert await images.find_by_request_hash("h1") is None
        # The same request in b makes b's own image; a's is never handed over.
        mine, created = await images.find_or_create(_image())
        assert created and mine.id != root.id and mine.tenant == "b"
        assert (await images.find_by_request_hash("h1")) == mine
        assert [r.id for r in await images.versions(mine.id)] == [mine.id]
    with tenant_scope("a"):
        assert [r.id for r in await images.versions(child.id)] == [root.id, child.id]
        found = await images.find_by_request_hash("h1")
        assert found is not None and found.id == root.id
        assert (await images.get(root.id)).deleted_at is None  # b's delete did nothing
    # Unscoped: every image; unscoped rows are the open tenant's, and dedupe among the open tenant's only.
    assert {(await images.get(i)).tenant for i in (root.id, mine.id)} == {"a", "b"}
    opened, created = await images.find_or_create(_image())
    assert created and opened.tenant == "" and opened.id not in {root.id, mine.id}


# -- subjects -----------------------------------------------------------------------------------------------------


async def test_a_subject_key_names_a_different_subject_in_each_tenant(engine: AsyncEngine) -> None:
    subjects, images = SubjectStore(engine), ImageRepository(engine)
    with tenant_scope("a"):
        await subjects.record("campaign-7/mira", "portrait", 11, {"hair": "red"})
        a_image, _ = await images.find_or_create(_image("s1", subject_key="campaign-7/mira"))
    with tenant_scope("b"):
        assert await subjects.find("campaign-7/mira") is None
        with pytest.raises(SubjectNotFound):
            await subjects.get("campaign-7/mira")
        assert await subjects.images("campaign-7/mira") == []
        mine = await subjects.record("campaign-7/mira", "creature", 22, {"eyes": "green"})
        assert (mine.kind, mine.seed_base, mine.descriptors) == ("creature", 22, {"eyes": "green"})
    with tenant_scope("a"):
        theirs = await subjects.get("campaign-7/mira")
        assert (theirs.seed_base, theirs.descriptors) == (11, {"hair": "red"})
        assert [r.id for r in await subjects.images("campaign-7/mira")] == [a_image.id]
    assert await subjects.find("campaign-7/mira") is None  # unscoped: the open tenant's namespace


# -- themes -------------------------------------------------------------------------------------------------------


def _themes(engine: AsyncEngine) -> ThemeService:
    packs = [("core", theme_from_dict({"name": "ink", "fragments": ["built-in ink"]}))]
    return ThemeService(engine, packs=packs, kinds=("generate",), current_ttl_s=60)


async def test_themes_are_per_tenant_over_the_shared_ones(engine: AsyncEngine) -> None:
    themes = _themes(engine)
    await themes.sync_builtins()
    shared = await themes.create({"name": "shared-style", "fragments": ["shared"]})  # unscoped: the open tenant's
    with tenant_scope("a"):
        own = await themes.create({"name": "moody", "fragments": ["a's mood"]})
        # a's theme of a shared theme's name shadows it, for a only; a child names its parent by that name.
        shadow = await themes.create({"name": "shared-style", "fragments": ["a's own"]})
        await themes.create({"name": "kid", "parent": "shared-style", "fragments": ["kid"]})
        assert shadow.id != shared.id
        assert (await themes.resolve("kid")).style.fragments == ("a's own", "kid")
        assert (await themes.get("shared-style")).id == shadow.id
        listed, _ = await themes.list()
        ink, kid = (await themes.get("ink")).id, (await themes.get("kid")).id
        expected = [("ink", ink), ("kid", kid), ("moody", own.id), ("shared-style", shadow.id)]
        assert [(t.name, t.id) for t in listed] == expected
        # Shared themes are visible but read-only to a tenant.
        with pytest.raises(ThemeReadOnly) as refused:
            await themes.update(str(shared.id), {"fragments": ["taken over"]})
        assert refused.value.shared and "shared" in str(refused.value)
        with pytest.raises(ThemeReadOnly) as refused:
            await themes.update("ink", {"fragments": ["taken over"]})
        assert not refused.value.shared  # built in
        with pytest.raises(ThemeReadOnly):
            await themes.delete(str(shared.id))
    with tenant_scope("b"):
        for ref in ("moody", str(own.id), str(shadow.id), f"{own.id}@1", "kid"):
            with pytest.raises(ThemeNotFound):
                await themes.get(ref)
        with pytest.raises(ThemeNotFound):
            await themes.update("moody", {"fragments": ["x"]})
        assert (await themes.get("shared-style")).id == shared.id  # the shared one: b has none of its own
        assert (await themes.get("ink")).builtin
        assert sorted(t.name for t in (await themes.list())[0]) == ["ink", "shared-style"]
        # The same name in b is b's own theme.
        mine = await themes.create({"name": "moody", "fragments": ["b's mood"]})
        assert mine.id != own.id and (await themes.get("moody")).data.fragments == ("b's mood",)
        await themes.update("moody", {"fragments": ["b's mood, v2"]})
    with tenant_scope("a"):
        assert (await themes.get("moody")).data.fragments == ("a's mood",)
    # Unscoped: every theme by id; a name several tenants use means the open tenant's.
    assert {(await themes.get(str(i))).name for i in (own.id, mine.id, shadow.id)} == {"moody", "shared-style"}
    assert (await themes.get("shared-style")).id == shared.id


# -- overlays -----------------------------------------------------------------------------------------------------


async def test_a_tenant_never_sees_another_tenants_overlays(engine: AsyncEngine) -> None:
    images, overlays = ImageRepository(engine), OverlayStore(engine)

    async def create(background: ImageRecord, overlay_id: uuid.UUID | None = None) -> Any:
        return await overlays.create(
            kind="overlay", image_id=background.id, spec={"grid": 1}, geometry={}, result_image_id=None,
            overlay_id=overlay_id,
        )  # fmt: skip

    with tenant_scope("a"):
        background, _ = await images.find_or_create(_image("bg"))
        made = await create(background)
    with tenant_scope("b"):
        with pytest.raises(OverlayNotFound):
            await overlays.get(made.id)
        with pytest.raises(OverlayNotFound):
            await overlays.version(made.id, 1)
        with pytest.raises(OverlayNotFound):
            await overlays.versions(made.id)
        with pytest.raises(OverlayNotFound):
            await overlays.update(made.id, spec={"grid": 2}, geometry={}, result_image_id=None)
        with pytest.raises(OverlayNotFound):  # a retry naming a's id does not answer with a's overlay
            await create(background, made.id)
    with tenant_scope("a"):
        assert (await overlays.get(made.id)).version == 1
        assert (await create(background, made.id)).id == made.id  # a's own retry: its overlay, unchanged
        assert [v.version for v in await overlays.versions(made.id)] == [1]
    assert (await overlays.get(made.id)).id == made.id
