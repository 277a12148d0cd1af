"""Operator commands: ``python -m serve_app.cli migrate | gc``.

Both read the same ``LIMNER_*`` environment as the service (serve_app.config.Settings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from sqlalchemy import select

from serve_app.config import AppConfig, Settings
from serve_app.jobs.kinds import KindRegistry, default_kinds

__all__ = ["collect_garbage", "main", "referenced_hashes"]


async def referenced_hashes(engine: Any, registry: KindRegistry | None = None) -> set[str]:
    """Every blob something still points at: image rows (deleted ones too; deletion is soft) and whatever
    each job's kind says its payload references (init and control images, and so on)."""
    from serve_app.db import READ_ONLY, Job
    from serve_app.images import ImageRepository

    registry = registry or KindRegistry(default_kinds())
    keep = await ImageRepository(engine).referenced_hashes()
    async with engine.connect() as conn:
        conn = await conn.execution_options(**READ_ONLY)  # SQLite: a deferred transaction, no write lock
        for kind, payload in await conn.execute(select(Job.kind, Job.payload)):
            if isinstance(payload, dict):
                keep |= registry.referenced_assets(kind, payload)
    return keep


async def collect_garbage(settings: Settings, older_than_s: float, dry_run: bool) -> dict[str, Any]:
    """Removes unreferenced blobs older than ``older_than_s`` from the asset store.

    A blob written by a job that has not committed its image row yet is younger than the grace period, so
    collection never races a running job.
    """
    from serve_app.services import open_services

    services = await open_services(AppConfig(), settings)
    try:
        keep = await referenced_hashes(services.engine)
        result = await services.store.collect(keep, older_than_s=older_than_s, dry_run=dry_run)
    finally:
        await services.aclose()
    return {
        "removed": len(result.removed),
        "bytes_freed": result.bytes_freed,
        "kept_referenced": result.kept_referenced,
        "kept_recent": result.kept_recent,
        "dry_run": dry_run,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serve_app.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="upgrade the metadata database to the newest schema")
    gc = commands.add_parser("gc", help="remove asset blobs that nothing references")
    gc.add_argument("--older-than", type=float, default=3600.0, help="grace period in seconds (default 3600)")
    gc.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "migrate":
        from serve_app.services import database_url, migrate_once

        asyncio.run(migrate_once(database_url(settings)))
        print("database at the newest schema")
    else:
        print(json.dumps(asyncio.run(collect_garbage(settings, args.older_than, args.dry_run))))


if __name__ == "__main__":
    main()
