"""The installation's health file, written by the bridge so the installation's health service sees it.

Format: ``experimance_common/health.py`` and the health service's ``health-file-format.md`` (naive local
ISO timestamps). The service expects ``image_server`` and calls the file stale after 120 s without a fresh
``last_check``; :func:`health_loop` rewrites it every ``interval_s`` while the bridge's loops run, and once
more, as ``error``, when one of them has stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from serve_app.files import atomic_write

if TYPE_CHECKING:
    from serve_app.experimance.bridge import BridgeStats

__all__ = ["HealthProbe", "HealthStatus", "health_document", "health_loop", "health_status"]

logger = logging.getLogger("ray.serve.limner.experimance")

HealthStatus = Literal["healthy", "warning", "error"]


@dataclass(frozen=True)
class HealthProbe:
    """What the health file reports about a bridge at one moment.

    Attributes:
        alive: Whether all of the bridge's loops are still running.
        last_reply_fallback: Whether the last reply sent was a fallback image.
        stats: The bridge's counters.
    """

    alive: bool
    last_reply_fallback: bool
    stats: BridgeStats


def health_status(alive: bool, last_reply_fallback: bool) -> tuple[HealthStatus, str]:
    """The status and message for a bridge's state.

    Args:
        alive: Whether all of the bridge's loops are still running.
        last_reply_fallback: Whether the last reply sent was a fallback image.

    Returns:
        ``("error", ...)`` when a loop stopped, else ``("warning", ...)`` after a fallback reply, else
        ``("healthy", ...)``.
    """
    if not alive:
        return "error", "a bridge loop has stopped"
    if last_reply_fallback:
        return "warning", "the last reply was a fallback image"
    return "healthy", "connected; answering requests"


def health_document(
    service_name: str,
    status: HealthStatus,
    message: str,
    stats: BridgeStats,
    *,
    uptime_s: float,
    now: datetime | None = None,
) -> bytes:
    """The health file's content in the installation's format.

    Args:
        service_name: ``service_name`` in the file (the health service expects ``image_server``).
        status: The overall status, also the status of the one check (``zmq_bridge``).
        message: The check's message.
        stats: The bridge's counters (requests, replies, fallbacks, pending, drops, failures).
        uptime_s: Seconds since the bridge started.
        now: The time written, naive local; default: now.

    Returns:
        Indented UTF-8 JSON.
    """
    stamp = (now or datetime.now()).isoformat()
    document = {
        "service_name": service_name,
        "overall_status": status,
        "checks": [
            {
                "name": "zmq_bridge",
                "status": status,
                "message": message,
                "timestamp": stamp,
                "metadata": {
                    "requests": stats.requests,
                    "replies": stats.replies,
                    "fallbacks": stats.fallbacks,
                    "pending": stats.pending,
                    "dropped_frames": sum(stats.drops.values()),
                },
            }
        ],
        "last_updated": stamp,
        "uptime": uptime_s,
        "restart_count": 0,
        "error_count": stats.fallbacks + stats.unanswered + stats.send_failures,
        "last_check": stamp,
    }
    return json.dumps(document, indent=2).encode("utf-8")


async def health_loop(
    path: Path,
    probe: Callable[[], HealthProbe],
    *,
    service_name: str,
    interval_s: float,
    started_at: float,
) -> None:
    """Rewrites the health file every ``interval_s`` until ``probe`` reports a stopped loop (or it is cancelled).

    A write that fails is logged and tried again at the next interval.

    Args:
        path: The health file.
        probe: Returns the bridge's state; called on the event loop before each write.
        service_name: ``service_name`` in the file.
        interval_s: Seconds between writes.
        started_at: When the bridge started, epoch seconds (for ``uptime``).
    """
    while True:
        state = probe()
        status, message = health_status(state.alive, state.last_reply_fallback)
        document = health_document(service_name, status, message, state.stats, uptime_s=time.time() - started_at)
        try:
            # Rewritten every few seconds and worthless after a reboot: no fsync.
            await asyncio.to_thread(atomic_write, path, document, fsync=False)
        except OSError as exc:
            logger.warning("cannot write health file %s: %s", path, exc)
        if not state.alive:
            return  # written once as "error"; the health service takes it from there
        await asyncio.sleep(interval_s)
