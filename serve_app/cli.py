"""Operator commands: ``python -m serve_app.cli migrate | gc``.

Both read the same ``LIMNER_*`` environment as the service (serve_app.config.Settings). ``gc`` is the
service's retention janitor run once (serve_app/jobs/retention.py): prune finished jobs and purged images
past their retention, then remove the blobs nothing references any more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from serve_app.config import AppConfig, RetentionConfig, Settings
from serve_app.jobs.kinds import KindRegistry, default_kinds

__all__ = ["collect_garbage", "main"]


async def collect_garbage(
    settings: Settings, older_than_s: float, dry_run: bool, *, config: AppConfig | None = None
) -> dict[str, Any]:
    """Prunes what the retention settings no longer keep, then removes unreferenced blobs older than
    ``older_than_s`` from the asset store.

    A blob written by a job that has not committed its image row yet is younger than the grace period, so
    collection never races a running job. ``dry_run`` prunes nothing and removes nothing; it reports the blobs
    that would go now (before any pruning).
    """
    from serve_app.images import ImageRepository
    from serve_app.jobs import retention
    from serve_app.services import open_services

    config = config or AppConfig()
    services = await open_services(config, settings)
    try:
        pruned = retention.RetentionReport()
        if not dry_run:
            pruned = await retention.prune(services.jobs, ImageRepository(services.engine), config)
        collected = await retention.collect(
            services, KindRegistry(default_kinds()), older_than_s=older_than_s, dry_run=dry_run
        )
    finally:
        await services.aclose()
    return {
        **collected,
        "jobs_deleted": pruned.jobs_deleted,
        "images_purged": pruned.images_purged,
        "keys_released": pruned.keys_released,
        "dry_run": dry_run,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serve_app.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="upgrade the metadata database to the newest schema")
    defaults = RetentionConfig()
    gc = commands.add_parser("gc", help="prune old jobs and purged images, then remove unreferenced blobs")
    gc.add_argument("--older-than", type=float, default=3600.0, help="blob grace period in seconds (default 3600)")
    gc.add_argument(
        "--jobs-days",
        type=float,
        default=defaults.jobs_days,
        help=f"keep finished jobs this many days ({defaults.jobs_days})",
    )
    gc.add_argument(
        "--images-days",
        type=float,
        default=defaults.deleted_images_days,
        help=f"purge soft-deleted images after this many days ({defaults.deleted_images_days})",
    )
    gc.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "migrate":
        from serve_app.services import database_url, migrate_once

        asyncio.run(migrate_once(database_url(settings)))
        print("database at the newest schema")
    else:
        retention = RetentionConfig(jobs_days=args.jobs_days, deleted_images_days=args.images_days)
        config = AppConfig(retention=retention)
        print(json.dumps(asyncio.run(collect_garbage(settings, args.older_than, args.dry_run, config=config))))


if __name__ == "__main__":
    main()
