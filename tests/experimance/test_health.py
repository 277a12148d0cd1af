"""serve_app/experimance/health.py: the installation-format health file and the loop that keeps it fresh."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest

from serve_app.experimance.bridge import BridgeStats
from serve_app.experimance.health import HealthProbe, health_document, health_loop, health_status


@pytest.mark.parametrize(
    ("alive", "fallback", "status"),
    [(True, False, "healthy"), (True, True, "warning"), (False, False, "error"), (False, True, "error")],
)
def test_status_from_the_bridge_state(alive: bool, fallback: bool, status: str) -> None:
    got, message = health_status(alive, fallback)
    assert got == status and message


def test_document_in_the_installation_format() -> None:
    stats = BridgeStats(
        requests=7, replies=5, fallbacks=2, unanswered=1, send_failures=3, pending=2, drops={"not_json": 4, "x": 1}
    )
    now = datetime(2026, 1, 2, 3, 4, 5)
    document = json.loads(health_document("image_server", "warning", "careful", stats, uptime_s=12.5, now=now))
    assert document == {
        "service_name": "image_server",
        "overall_status": "warning",
        "checks": [
            {
                "name": "zmq_bridge",
                "status": "warning",
                "message": "careful",
                "timestamp": "2026-01-02T03:04:05",
                "metadata": {"requests": 7, "replies": 5, "fallbacks": 2, "pending": 2, "dropped_frames": 5},
            }
        ],
        "last_updated": "2026-01-02T03:04:05",
        "uptime": 12.5,
        "restart_count": 0,
        "error_count": 6,
        "last_check": "2026-01-02T03:04:05",
    }


def test_timestamps_are_naive_local_iso() -> None:
    document = json.loads(health_document("s", "healthy", "ok", BridgeStats(), uptime_s=0.0))
    stamp = datetime.fromisoformat(document["last_check"])
    assert stamp.tzinfo is None and abs((datetime.now() - stamp).total_seconds()) < 60


async def test_loop_rewrites_until_a_loop_stops_then_writes_error_once(tmp_path: Path) -> None:
    path = tmp_path / "health" / "image_server.json"
    states = [
        HealthProbe(alive=True, last_reply_fallback=False, stats=BridgeStats(requests=1)),
        HealthProbe(alive=True, last_reply_fallback=True, stats=BridgeStats(requests=2)),
        HealthProbe(alive=False, last_reply_fallback=True, stats=BridgeStats(requests=3)),
    ]
    written: list[dict[str, object]] = []

    def probe() -> HealthProbe:
        if path.exists():
            written.append(json.loads(path.read_text()))
        return states[len(written)]

    await asyncio.wait_for(
        health_loop(path, probe, service_name="image_server", interval_s=0.01, started_at=0.0), timeout=10
    )
    written.append(json.loads(path.read_text()))
    assert [d["overall_status"] for d in written] == ["healthy", "warning", "error"]
    assert [d["checks"][0]["metadata"]["requests"] for d in written] == [1, 2, 3]  # type: ignore[index]
    assert all(float(d["uptime"]) > 0 for d in written)  # type: ignore[arg-type]
    assert sorted(p.name for p in path.parent.iterdir()) == ["image_server.json"]


async def test_a_failed_write_is_logged_and_tried_again(
    tmp_path: Path, experimance_log: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the health folder should be")
    path = blocker / "image_server.json"
    calls = 0

    def probe() -> HealthProbe:
        nonlocal calls
        calls += 1
        if calls == 3:
            blocker.unlink()  # the folder can be made from now on
        return HealthProbe(alive=calls < 4, last_reply_fallback=False, stats=BridgeStats())

    await asyncio.wait_for(
        health_loop(path, probe, service_name="image_server", interval_s=0.01, started_at=0.0), timeout=10
    )
    assert experimance_log.text.count("cannot write health file") == 2
    assert json.loads(path.read_text())["overall_status"] == "error"
