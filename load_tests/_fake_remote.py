"""The remote APIs' fakes (tests/remote_fakes) in a process of their own, for the benchmarks: in the benchmark's
own process the fake's handlers would share its GIL, and a paid API's service time is not limner's.

Run by :class:`FakeProcess`: prints ``{"url": ...}`` once serving; each line read from stdin is a command
(``delay <backend> <seconds>``, ``stats``: prints ``{"max_in_flight": {...}, "calls": {...}}``); EOF stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class FakeProcess:
    """The fakes in a child process; ``base_url(backend)`` as on :class:`tests.remote_fakes.server.FakeServer`."""

    def __enter__(self) -> FakeProcess:
        self._proc = subprocess.Popen(
            [sys.executable, __file__], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        self.url = json.loads(self._proc.stdout.readline())["url"]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)

    def base_url(self, backend: str) -> str:
        paths = {"getimg": "/getimg", "fal": "/fal", "openai": "/openai/v1", "runware": "/runware/v1"}
        return self.url + paths[backend]

    def command(self, line: str) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        return dict(json.loads(self._proc.stdout.readline()))


def _serve() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.remote_fakes.server import FakeServer

    with FakeServer() as server:
        print(json.dumps({"url": server.url}), flush=True)
        control = server.control
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["delay"]:
                control.delay_s[words[1]] = float(words[2])
                control.max_in_flight[words[1]] = 0
                print(json.dumps({"ok": True}), flush=True)
            elif words[:1] == ["stats"]:
                calls = {name: len(c) for name, c in control.calls.items()}
                print(json.dumps({"max_in_flight": dict(control.max_in_flight), "calls": calls}), flush=True)


if __name__ == "__main__":
    _serve()
