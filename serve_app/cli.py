"""Operator commands: ``python -m serve_app.cli migrate | gc | keys``.

All read the same ``LIMNER_*`` environment as the service (serve_app.config.Settings). ``gc`` is the
service's retention janitor run once (serve_app/jobs/retention.py): prune finished jobs and purged images
past their retention, then remove the blobs nothing references any more. ``keys`` makes, lists and revokes
API keys (serve_app/auth; docs/AUTH.md)::

    python -m serve_app.cli keys create --name NAME --scopes images:generate,images:read [--tenant T]
        [--expires-days D] [--limit images_per_day=100]
    python -m serve_app.cli keys list [--tenant T]
    python -m serve_app.cli keys revoke KEY_ID
    python -m serve_app.cli keys webhook-secret --tenant T

``keys create`` prints the new key alone on its last line (shown this once: only its hash is stored) after a
line of JSON describing it (with the tenant's ``webhook_secret`` when ``LIMNER_WEBHOOK_SECRET`` is set: its
webhooks are signed with it); ``keys list`` prints one JSON object per key, never a key or a hash;
``keys webhook-secret`` prints a tenant's webhook secret again.
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


async def _keys(settings: Settings, args: argparse.Namespace) -> list[str]:
    """Runs one ``keys`` subcommand; returns the lines to print."""
    from datetime import UTC, datetime, timedelta

    from serve_app.auth.keys import SqlKeyStore
    from serve_app.db import make_engine
    from serve_app.services import database_url, migrate_once
    from serve_app.webhooks.signing import tenant_secret

    service_secret = None if settings.webhook_secret is None else settings.webhook_secret.get_secret_value()
    if args.keys_command == "webhook-secret":
        if not service_secret:
            raise ValueError("LIMNER_WEBHOOK_SECRET is not set: webhooks are off")
        return [tenant_secret(service_secret, args.tenant)]
    url = database_url(settings)
    await migrate_once(url)
    engine = make_engine(url)
    try:
        store = SqlKeyStore(engine)
        if args.keys_command == "create":
            expires = None if args.expires_days is None else datetime.now(UTC) + timedelta(days=args.expires_days)
            key, record = await store.create(
                args.name,
                args.scopes.split(","),
                tenant=args.tenant,
                expires_at=expires,
                limits=dict(args.limit or []),
            )
            document = record.document()
            if service_secret:
                document["webhook_secret"] = tenant_secret(service_secret, record.tenant)
            return [json.dumps(document), key]
        if args.keys_command == "list":
            return [json.dumps(record.document()) for record in await store.list(tenant=args.tenant)]
        record = await store.revoke(args.key_id)
        return [json.dumps(record.document())]
    finally:
        await engine.dispose()


def _limit(text: str) -> tuple[str, int | None]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: want NAME=N or NAME=none")
    if value.strip().lower() == "none":
        return name.strip(), None
    try:
        return name.strip(), int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a whole number") from None


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
    keys = commands.add_parser("keys", help="make, list and revoke API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="make a key; prints it once, on its own line")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--scopes", required=True, help="comma-separated: images:generate,images:read,...")
    create.add_argument("--tenant", help="whose jobs and images it sees (default: a tenant of its own)")
    create.add_argument("--expires-days", type=float, help="stop working after this many days (default: never)")
    create.add_argument(
        "--limit", type=_limit, action="append", help="override auth.limits, e.g. images_per_day=100 (repeatable)"
    )
    listing = keys.add_parser("list", help="every key (never the key itself)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    hooks = keys.add_parser("webhook-secret", help="the secret a tenant's webhooks are signed with")
    hooks.add_argument("--tenant", required=True)
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "migrate":
        from serve_app.services import database_url, migrate_once

        asyncio.run(migrate_once(database_url(settings)))
        print("database at the newest schema")
    elif args.command == "keys":
        from serve_app.auth.keys import KeyNotFound

        try:
            lines = asyncio.run(_keys(settings, args))
        except KeyNotFound as exc:
            parser.exit(2, f"keys {args.keys_command}: no key with id {exc}\n")
        except ValueError as exc:
            parser.exit(2, f"keys {args.keys_command}: {exc}\n")
        print("\n".join(lines))
    else:
        retention = RetentionConfig(jobs_days=args.jobs_days, deleted_images_days=args.images_days)
        config = AppConfig(retention=retention)
        print(json.dumps(asyncio.run(collect_garbage(settings, args.older_than, args.dry_run, config=config))))


if __name__ == "__main__":
    main()
