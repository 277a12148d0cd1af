"""Saves coverage data every second in Ray worker processes; ``make coverage`` installs it into the venv.

A Ray worker (a Serve replica) never runs its ``atexit`` handlers: a killed actor, a graceful Serve shutdown
and a raylet that goes away all end the process from C++. So the data of the end-to-end tests' replicas would
be lost whatever coverage's ``sigterm`` setting says. This module is imported by a ``.pth`` line, only in a
process whose coverage was started from ``COVERAGE_PROCESS_CONFIG`` (``[tool.coverage.run] patch =
["subprocess"]``), and saves that process's data in the background, so at most the last second of a replica's
work goes missing. It does nothing in other processes, and nothing at all unless coverage runs.
"""

from __future__ import annotations

import os
import sys
import threading
import time

INTERVAL_S = float(os.environ.get("LIMNER_COVERAGE_SAVE_S", "1"))


_OURS = ("serve_app", "deployments", "pipelines")


def _is_ray_worker() -> bool:
    return os.path.basename(sys.argv[0] if sys.argv else "") == "default_worker.py"


def _imported_ours() -> bool:
    """Whether this process runs any of our code (Serve's controller and proxy are Ray workers too)."""
    return any(name.partition(".")[0] in _OURS for name in list(sys.modules))


def _autosave() -> None:
    import coverage

    time.sleep(INTERVAL_S)  # sys.argv is not set yet while .pth files run
    if not _is_ray_worker():
        return
    while True:
        cov = coverage.Coverage.current()
        if cov is not None and _imported_ours():
            try:
                cov.save()
            except Exception:  # a failed save must never take the replica down; the next one retries
                pass
        time.sleep(INTERVAL_S)


def install() -> None:
    if os.environ.get("COVERAGE_PROCESS_CONFIG") or os.environ.get("COVERAGE_PROCESS_START"):
        threading.Thread(target=_autosave, name="limner-coverage-autosave", daemon=True).start()


install()
