"""Import boundaries, each checked in a fresh interpreter (this one has imported everything already)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=_REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "module",
    ["serve_app.config", "serve_app.experimance", "serve_app.experimance.config", "pipelines.encode"],
)
def test_importing_does_not_import_zmq(module: str) -> None:
    result = _run(
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m == 'zmq' or m.startswith('zmq.'))\n"
        "assert not loaded, loaded\n"
    )
    assert result.returncode == 0, result.stderr


def test_the_bridge_names_still_come_from_the_package() -> None:
    result = _run(
        "import sys\n"
        "from serve_app.experimance import BridgeJob, ZmqBridge\n"
        "from serve_app.experimance import bridge\n"
        "assert ZmqBridge is bridge.ZmqBridge and BridgeJob is bridge.BridgeJob\n"
        "assert 'zmq' in sys.modules\n"
    )
    assert result.returncode == 0, result.stderr


def test_pipelines_encode_is_pure() -> None:
    result = _run(
        "import sys, pipelines.encode\n"
        "banned = ('ray', 'fastapi', 'sqlalchemy', 'redis', 'zmq', 'torch', 'serve_app')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in banned)\n"
        "assert not loaded, loaded\n"
    )
    assert result.returncode == 0, result.stderr
