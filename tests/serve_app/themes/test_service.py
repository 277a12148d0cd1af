"""The theme service on both databases: built-ins stored once and versioned on change, immutable versions,
pinned references resolving their parents as of their own creation, the delete guards, subjects."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pipelines.errors import InputError
from pipelines.styles import theme_from_dict
from serve_app.db import Job, make_session_factory
from serve_app.subjects import SubjectStore
from serve_app.themes.base import ThemeConflict, ThemeNotFound, ThemeReadOnly
from serve_app.themes.service import ThemeService


def _service(engine: AsyncEngine, **packs: list[dict[str, object]]) -> ThemeService:
    themes = [(pack, theme_from_dict(t)) for pack, items in packs.items() for t in items]
    return ThemeService(engine, packs=themes, kinds=("generate", "portrait"), current_ttl_s=0)


async def test_builtins_are_stored_once_and_versioned_when_their_data_changes(engine: AsyncEngine) -> None:
    first = _service(engine, core=[{"name": "base", "fragments": ["one"]}])
    assert await first.sync_builtins() == 1
    assert await first.sync_builtins() == 0  # nothing changed: nothing written
    changed = _service(engine, core=[{"name": "base", "fragments": ["two"]}])
    assert await changed.sync_builtins() == 1
    record = await changed.get("base")
    assert record.builtin and record.version == 2 and record.data.fragments == ("two",)
    assert (await changed.get("base@1")).data.fragments == ("one",)
    with pytest.raises(ThemeReadOnly):
        await changed.update("base", {"fragments": ["three"]})


async def test_a_pinned_version_resolves_its_parents_as_they_were(engine: AsyncEngine) -> None:
    service = _service(engine)
    await service.create({"name": "parent", "fragments": ["old parent"]})
    await service.create({"name": "child", "parent": "parent", "fragments": ["child"]})
    await asyncio.sleep(0.01)  # versions are ordered by their creation time
    await service.update("parent", {"fragments": ["new parent"]})
    assert (await service.resolve("child")).style.fragments == ("new parent", "child")
    pinned = await service.resolve("child@1")
    assert pinned.style.fragments == ("old parent", "child")
    assert pinned.chain == (("parent", 1), ("child", 1))


async def test_delete_guards_children_and_recent_jobs(engine: AsyncEngine) -> None:
    service = _service(engine)
    parent = await service.create({"name": "parent"})
    await service.create({"name": "kid", "parent": "parent"})
    with pytest.raises(ThemeConflict, match="kid"):
        await service.delete("parent")
    await service.delete("kid")
    async with make_session_factory(engine)() as session, session.begin():
        session.add(Job(kind="generate", payload={"theme_id": str(parent.id)}, body_hash="0" * 64))
    with pytest.raises(ThemeConflict, match="force"):
        await service.delete("parent")
    deleted = await service.delete("parent", force=True)
    assert deleted.deleted_at is not None
    with pytest.raises(ThemeNotFound):
        await service.resolve("parent")


async def test_validation_refuses_unknown_kinds_and_settings_past_the_limits(engine: AsyncEngine) -> None:
    service = _service(engine)
    with pytest.raises(InputError) as caught:
        await service.create({"name": "x", "kinds": ["sculpture"]})
    assert caught.value.param == "kinds"
    with pytest.raises(InputError) as caught:
        await service.create({"name": "y", "sizes": {"portrait": [4096, 4096]}})
    assert caught.value.param == "sizes.portrait"
    await service.create({"name": "z"})
    with pytest.raises(ThemeConflict):
        await service.create({"name": "z"})


async def test_subjects_keep_their_first_record_and_add_what_it_lacked(engine: AsyncEngine) -> None:
    store = SubjectStore(engine)
    first = await store.record("c/mira", "portrait", 77, {"hair": "silver"})
    again = await store.record("c/mira", "portrait", 12, {"hair": "red", "eyes": "green"})
    assert first.seed_base == again.seed_base == 77
    assert again.descriptors == {"hair": "silver", "eyes": "green"}
