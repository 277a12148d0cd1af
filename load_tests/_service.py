"""Starting and measuring a ``serve run`` process tree, shared by the benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]


def emit(bench: str, value: float, unit: str, baseline: float, **extra: Any) -> None:
    """Prints one figure as a JSON line: value, unit, the same-run baseline and value/baseline."""
    ratio = value / baseline if baseline else float("nan")
    print(
        json.dumps(
            {
                "bench": bench,
                "value": round(value, 4),
                "unit": unit,
                "baseline": round(baseline, 4),
                "ratio": round(ratio, 4),
                **extra,
            }
        ),
        flush=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ServeProcess:
    """``serve run CONFIG`` in its own process group, with helpers to wait for it and measure it."""

    def __init__(self, config: dict[str, Any], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        config["http_options"] = {**config.get("http_options", {}), "host": "127.0.0.1", "port": self.port}
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"serve-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log = workdir / f"serve-{self.port}.log"
        self.url = f"http://127.0.0.1:{self.port}"
        # A fresh data directory unless told otherwise: a database left by an earlier run would answer the
        # benchmark's seeded requests from its result cache.
        fresh = {"LIMNER_DATA_DIR": str(workdir / f"data-{self.port}")}
        self._env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **fresh, **(env or {})}
        self._env.pop("RAY_ADDRESS", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        serve_cli = Path(sys.executable).parent / "serve"
        self.started = time.perf_counter()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(serve_cli), "run", str(self.config_path)],
                cwd=ROOT,
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, path: str, timeout_s: float = 300) -> float:
        """Polls ``path`` until it answers 200; returns seconds since :meth:`start`."""
        assert self.proc is not None
        deadline = time.perf_counter() + timeout_s
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"serve run exited:\n{self.log.read_text()[-3000:]}")
                try:
                    if client.get(path).status_code == 200:
                        return time.perf_counter() - self.started
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"{path} not ready after {timeout_s}s:\n{self.log.read_text()[-3000:]}")

    def rss_gb(self) -> float:
        """Resident memory of the whole process tree: serve run, Ray's daemons, every replica."""
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        total = 0
        for proc in [root, *root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**30

    def kill(self) -> None:
        """SIGKILL to every process of the service at once: a power cut, not a shutdown."""
        assert self.proc is not None
        procs: list[psutil.Process] = []
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:  # serve run is gone already; its process group may not be
            pass
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        psutil.wait_procs(procs, timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
