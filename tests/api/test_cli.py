"""``python -m serve_app.cli gc`` against a real SQLite database and asset folder."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from serve_app.cli import collect_garbage
from serve_app.config import AppConfig, Settings
from serve_app.db import Image
from serve_app.images import ImageRepository
from serve_app.services import open_services


def test_gc_removes_only_old_unreferenced_blobs(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))

    async def scenario() -> tuple[str, str, str]:
        services = await open_services(AppConfig(), settings)
        try:
            kept = await services.store.put(b"referenced", "png")
            orphan = await services.store.put(b"orphan", "png")
            fresh = await services.store.put(b"just written by a running job", "png")
            await ImageRepository(services.engine).get_or_create(
                Image(kind="image", width=8, height=8, content_hash=kept, format="png", settings={})
            )
            old = time.time() - 7200
            for sha in (kept, orphan):
                os.utime(services.store.path(sha, "png"), (old, old))  # type: ignore[attr-defined]
            return kept, orphan, fresh
        finally:
            await services.aclose()

    kept, orphan, fresh = asyncio.run(scenario())
    dry = asyncio.run(collect_garbage(settings, older_than_s=3600, dry_run=True))
    assert dry["removed"] == 1
    report = asyncio.run(collect_garbage(settings, older_than_s=3600, dry_run=False))
    assert report["removed"] == 1 and report["kept_referenced"] == 1 and report["kept_recent"] == 1
    names = {p.stem for p in (tmp_path / "assets").rglob("*.png")}
    assert names == {kept, fresh} and orphan not in names


def test_gc_keeps_every_asset_a_jobs_kind_references(tmp_path: Path) -> None:
    """Each kind says what its payload needs: a generate job's init image and its ControlNet depth map."""
    from serve_app.jobs.kinds import GeneratePayload

    settings = Settings(data_dir=str(tmp_path))

    async def scenario() -> tuple[str, str, str]:
        services = await open_services(AppConfig(), settings)
        try:
            init = await services.store.put(b"img2img start", "png")
            depth = await services.store.put(b"depth map", "png")
            loose = await services.store.put(b"named by a kind nobody runs", "png")
            payload = GeneratePayload(
                request={"prompt": "a ruin", "seed": 1},
                cacheable=True,
                request_hash="v1:" + "0" * 64,
                generation={"prompt": "a ruin", "seed": 1},
                init_image=init,
                control_image=depth,
            )
            await services.jobs.submit("generate", payload.to_json())
            await services.jobs.submit("retired-kind", {"init_image": loose})
            old = time.time() - 7200
            for sha in (init, depth, loose):
                os.utime(services.store.path(sha, "png"), (old, old))  # type: ignore[attr-defined]
            return init, depth, loose
        finally:
            await services.aclose()

    init, depth, loose = asyncio.run(scenario())
    report = asyncio.run(collect_garbage(settings, older_than_s=3600, dry_run=False))
    assert report["removed"] == 1 and report["kept_referenced"] == 2
    names = {p.stem for p in (tmp_path / "assets").rglob("*.png")}
    assert names == {init, depth} and loose not in names


def test_gc_prunes_past_retention_then_collects_what_only_that_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``gc`` is the janitor run once: a soft-deleted image past its grace period and an old finished job go,
    and with them the blobs only they referenced; ``--dry-run`` prunes nothing."""
    from datetime import timedelta

    from sqlalchemy import update

    from serve_app.cli import main
    from serve_app.db import Job, make_session_factory, utcnow
    from serve_app.jobs.kinds import GeneratePayload

    settings = Settings(data_dir=str(tmp_path))

    async def scenario() -> tuple[str, str, str]:
        services = await open_services(AppConfig(), settings)
        try:
            gone = await services.store.put(b"deleted ten days ago", "png")
            init = await services.store.put(b"init image of a job from last year", "png")
            young = await services.store.put(b"deleted an hour ago", "png")
            repo = ImageRepository(services.engine)
            for sha in (gone, young):
                row = await repo.get_or_create(Image(kind="image", width=8, height=8, content_hash=sha, settings={}))
                await repo.soft_delete(row.id)
                if sha == gone:
                    async with make_session_factory(services.engine)() as session, session.begin():
                        at = utcnow() - timedelta(days=10)
                        await session.execute(update(Image).where(Image.id == row.id).values(deleted_at=at))
            payload = GeneratePayload(
                request={"prompt": "a ruin", "seed": 1},
                cacheable=True,
                request_hash="v1:" + "0" * 64,
                generation={"prompt": "a ruin", "seed": 1},
                init_image=init,
            )
            job = await services.jobs.submit("generate", payload.to_json())
            await services.jobs.cancel(job.id)
            async with make_session_factory(services.engine)() as session, session.begin():
                at = utcnow() - timedelta(days=365)
                await session.execute(update(Job).where(Job.id == job.id).values(finished_at=at))
            old = time.time() - 7200
            for sha in (gone, init, young):
                os.utime(services.store.path(sha, "png"), (old, old))  # type: ignore[attr-defined]
            return gone, init, young
        finally:
            await services.aclose()

    gone, init, young = asyncio.run(scenario())
    dry = asyncio.run(collect_garbage(settings, older_than_s=3600, dry_run=True))
    assert (dry["removed"], dry["jobs_deleted"], dry["images_purged"]) == (0, 0, 0)
    assert {gone, init, young} <= {p.stem for p in (tmp_path / "assets").rglob("*.png")}
    monkeypatch.setenv("LIMNER_DATA_DIR", str(tmp_path))
    main(["gc", "--older-than", "3600"])
    names = {p.stem for p in (tmp_path / "assets").rglob("*.png")}
    assert young in names and gone not in names and init not in names


def test_keys_create_list_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib
    import json

    from serve_app.cli import main

    monkeypatch.setenv("LIMNER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LIMNER_DATABASE_URL", raising=False)
    monkeypatch.delenv("LIMNER_WEBHOOK_SECRET", raising=False)
    main(
        [
            "keys",
            "create",
            "--name",
            "table-3",
            "--scopes",
            "images:read,images:generate",
            "--limit",
            "images_per_day=5",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    made, key = json.loads(lines[0]), lines[1]
    assert key.startswith("lmn_") and " " not in key  # the key alone on its line
    assert made["scopes"] == ["images:generate", "images:read"] and made["limits"] == {"images_per_day": 5}
    assert made["tenant"].startswith("key-") and "webhook_secret" not in made
    main(["keys", "create", "--name", "gm", "--scopes", "admin", "--tenant", "guild"])
    capsys.readouterr()
    main(["keys", "list"])
    listed = capsys.readouterr().out
    assert key not in listed and hashlib.sha256(key.encode()).hexdigest() not in listed  # never the key or its hash
    assert [json.loads(line)["name"] for line in listed.strip().splitlines()] == ["table-3", "gm"]
    main(["keys", "list", "--tenant", "guild"])
    assert [json.loads(line)["name"] for line in capsys.readouterr().out.strip().splitlines()] == ["gm"]
    main(["keys", "revoke", made["id"]])
    assert json.loads(capsys.readouterr().out)["revoked_at"] is not None
    with pytest.raises(SystemExit) as bad:
        main(["keys", "create", "--name", "x", "--scopes", "images:fly"])
    assert bad.value.code == 2 and "images:fly" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["keys", "revoke", "4b1e0000-0000-4000-8000-000000000000"])
    with pytest.raises(SystemExit):
        main(["keys", "webhook-secret", "--tenant", "guild"])  # webhooks are off: said so, not a traceback
    assert "LIMNER_WEBHOOK_SECRET" in capsys.readouterr().err


def test_keys_print_the_tenants_webhook_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64
    import hashlib
    import hmac
    import json

    from serve_app.cli import main

    master = b"limner-cli-test-webhook-secret-32b"
    monkeypatch.setenv("LIMNER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LIMNER_DATABASE_URL", raising=False)
    monkeypatch.setenv("LIMNER_WEBHOOK_SECRET", "whsec_" + base64.b64encode(master).decode())
    expected = (
        "whsec_" + base64.b64encode(hmac.new(master, b"limner-webhook-tenant:guild", hashlib.sha256).digest()).decode()
    )
    main(["keys", "create", "--name", "gm", "--scopes", "admin", "--tenant", "guild"])
    assert json.loads(capsys.readouterr().out.splitlines()[0])["webhook_secret"] == expected
    main(["keys", "webhook-secret", "--tenant", "guild"])
    assert capsys.readouterr().out.strip() == expected
