"""The switches a test flips on the fake remote APIs, and the record of every call they received.

The fakes' behaviour is specified in design12.md ("tests/remote_fakes/"); the API shapes come from
shared/docs/REMOTE_APIS.md (§2.1 GetImg, §2.2 FAL, §2.3 OpenAI) and shared/docs/RUNWARE_API.md. The test
thread writes these attributes while the server thread (its own event loop) reads them: plain attributes and
dicts are enough under the GIL, and a lock guards the counters and the failure queues.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

BACKENDS = ("getimg", "fal", "openai", "runware")

KEYS = {"getimg": "key-test-getimg", "fal": "fal-test-key", "openai": "sk-test-openai", "runware": "rw-test-key"}

#: How long one slice of a hang or delay sleeps before the handler re-checks whether it should stop early.
_SLICE_S = 0.05
#: What `hang` means: past any client timeout.
HANG_S = 3600.0


def expected_rgb(prompt: str, seed: int) -> tuple[int, int, int]:
    """The colour every fake image for (prompt, seed) is filled with.

    Args:
        prompt: The prompt the API received.
        seed: The seed the API used (the one its response reports).

    Returns:
        The first three bytes of sha256(f"{prompt}|{seed}") as an RGB triple.
    """
    digest = hashlib.sha256(f"{prompt}|{seed}".encode()).digest()
    return digest[0], digest[1], digest[2]


@dataclass(frozen=True)
class Call:
    """One HTTP request a fake received.

    Attributes:
        method: The HTTP method, upper case.
        path: The path relative to that backend's base URL (FakeServer.base_url), without the query string; the
            Runware endpoint itself reads "/".
        headers: The request headers, names in lower case.
        json: The parsed JSON body, or None when the body is empty or not JSON.
        at: time.monotonic() when the fake received it.
        query: The raw query string ("" when none).
        form: For a multipart body (OpenAI edits): its non-file fields; file fields map to "<file NAME, N bytes>".
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float
    query: str = ""
    form: dict[str, str] | None = None


@dataclass(frozen=True)
class Failure:
    """One queued `Control.fail` answer."""

    status: int
    retry_after: float | None = None
    retry_after_ms: int | None = None
    body: dict[str, Any] | None = None


def _per_backend(value: Any) -> dict[str, Any]:
    return dict.fromkeys(BACKENDS, value)


@dataclass
class Control:
    """Per-backend switches of the fake APIs; `reset()` puts them all back.

    Attributes:
        calls: Every request each backend received, in order (file downloads from the fake included).
        delay_s: Service time added to every generation call (asyncio.sleep, so concurrent calls overlap).
        hang: Generation calls sleep HANG_S (they stop early when the client disconnects, on reset, or at stop).
        truncate: The next response that carries image bytes (an inline base64 body, or a file download) is cut
            short: its Content-Length is larger than the body sent, then the connection closes. One-shot.
        missing_result: Result and image URLs answer 404 (FAL response_url and files; url outputs of the others).
        fal_queue_s: How long a FAL request stays IN_QUEUE, its queue_position counting down to 0.
        fal_progress_s: How long a FAL request stays IN_PROGRESS (delay_s["fal"] is added to it).
        fal_error: The next FAL request ends COMPLETED with this `error` (one-shot, taken at submit).
        fal_error_type: The `error_type` that goes with fal_error (omitted when None).
        runware_multiple: What Runware widths and heights must be divisible by (the docs disagree: 64, 16 or 8).
        in_flight: Generation calls running now, per backend.
        max_in_flight: The most generation calls seen running at once, per backend.
        cancelled: FAL request ids whose cancellation was accepted (202 CANCELLATION_REQUESTED).
    """

    calls: dict[str, list[Call]] = field(default_factory=lambda: {b: [] for b in BACKENDS})
    delay_s: dict[str, float] = field(default_factory=lambda: _per_backend(0.0))
    hang: dict[str, bool] = field(default_factory=lambda: _per_backend(False))
    truncate: dict[str, bool] = field(default_factory=lambda: _per_backend(False))
    missing_result: dict[str, bool] = field(default_factory=lambda: _per_backend(False))
    fal_queue_s: float = 0.0
    fal_progress_s: float = 0.0
    fal_error: str | None = None
    fal_error_type: str | None = None
    runware_multiple: int = 64
    in_flight: dict[str, int] = field(default_factory=lambda: _per_backend(0))
    max_in_flight: dict[str, int] = field(default_factory=lambda: _per_backend(0))
    cancelled: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque[Failure]] = {b: deque() for b in BACKENDS}
        self._epoch = 0
        self.stopping = False

    @property
    def epoch(self) -> int:
        """Counts reset() calls: work started before a reset stops when it sees the epoch change."""
        return self._epoch

    def fail(
        self,
        backend: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Make the next `times` requests to `backend` answer `status` with that API's documented error body.

        Args:
            backend: "getimg", "fal", "openai" or "runware".
            status: The HTTP status to answer.
            times: How many of the next requests (any route of that backend, downloads included) fail.
            retry_after: Sent as a `retry-after` header (seconds).
            retry_after_ms: Sent as a `retry-after-ms` header.
            body: The JSON body to answer instead of the default one for that API and status.
        """
        with self._lock:
            self._failures[backend].extend(Failure(status, retry_after, retry_after_ms, body) for _ in range(times))

    def take_failure(self, backend: str) -> Failure | None:
        """The next queued failure for `backend`, removed from the queue; None when there is none."""
        with self._lock:
            queue = self._failures[backend]
            return queue.popleft() if queue else None

    def take_truncate(self, backend: str) -> bool:
        """Whether this response must be cut short (clears the one-shot switch)."""
        with self._lock:
            if self.truncate.get(backend):
                self.truncate[backend] = False
                return True
            return False

    def record(self, backend: str, call: Call) -> None:
        """Append one received request to calls[backend]."""
        with self._lock:
            self.calls[backend].append(call)

    def reset(self) -> None:
        """Every switch off, every record empty; generation calls still sleeping end early."""
        with self._lock:
            self._epoch += 1
            for backend in BACKENDS:
                self.calls[backend] = []
                self._failures[backend].clear()
            self.delay_s.update(_per_backend(0.0))
            self.hang.update(_per_backend(False))
            self.truncate.update(_per_backend(False))
            self.missing_result.update(_per_backend(False))
            self.in_flight.update(_per_backend(0))
            self.max_in_flight.update(_per_backend(0))
            self.cancelled.clear()
            self.fal_queue_s = 0.0
            self.fal_progress_s = 0.0
            self.fal_error = None
            self.fal_error_type = None
            self.runware_multiple = 64

    async def generation(self, backend: str, *, extra_s: float = 0.0, disconnected: Any = None) -> None:
        """One generation call's service time, counted in in_flight/max_in_flight while it runs.

        Sleeps extra_s + delay_s[backend], or HANG_S while hang[backend] stays set. Ends early on reset(), when the
        server stops, or when `disconnected` (an async callable, e.g. Request.is_disconnected) says the client left.

        Args:
            backend: Which backend's counters and switches apply.
            extra_s: Service time on top of delay_s (FAL's fal_progress_s).
            disconnected: An async callable returning True once the client has gone away.
        """
        with self._lock:
            epoch = self._epoch
            self.in_flight[backend] += 1
            self.max_in_flight[backend] = max(self.max_in_flight[backend], self.in_flight[backend])
        hanging = bool(self.hang.get(backend))
        deadline = time.monotonic() + (HANG_S if hanging else extra_s + self.delay_s.get(backend, 0.0))
        try:
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.sleep(min(left, _SLICE_S))
                if self.stopping or epoch != self._epoch or (hanging and not self.hang.get(backend)):
                    break
                if disconnected is not None and await disconnected():
                    break
        finally:
            with self._lock:
                if epoch == self._epoch:
                    self.in_flight[backend] -= 1
