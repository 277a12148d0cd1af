"""A real pipeline with a gate in its denoising loop, so a test can act while a generation is mid-run."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from pipelines.request import GenerationRequest

__all__ = ["GatedPipeline"]


class GatedPipeline:
    """Wraps a pipeline (the tiny one): a generation stops after step ``hold_at`` until :meth:`open`.

    The worker thread waits at the gate *before* the generator's own step callback runs, so whatever the test
    did meanwhile (cancel, abandon) is what that callback sees. Everything else is the wrapped pipeline's.

    Attributes:
        reached: Set when a generation is waiting at the gate.
        finished: Set when a generation has returned or raised (after the gate was opened).
    """

    def __init__(self, inner: Any, hold_at: int = 2) -> None:
        self._inner = inner
        self.hold_at = hold_at
        self.reached = threading.Event()
        self.finished = threading.Event()
        self._gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def close(self) -> None:
        """Hold the next generation at the gate again."""
        self._gate.clear()
        self.reached.clear()
        self.finished.clear()

    def open(self) -> None:
        """Let a held generation go on."""
        self._gate.set()

    def generate(self, requests: Sequence[GenerationRequest], on_step: Any = None) -> Any:
        def step(s: int, total: int) -> bool:
            if s == self.hold_at and not self._gate.is_set():
                self.reached.set()
                self._gate.wait(timeout=120)  # a bound only so that a broken test cannot hang the run
            return True if on_step is None else bool(on_step(s, total))

        try:
            return self._inner.generate(requests, on_step=step)
        finally:
            self.finished.set()
