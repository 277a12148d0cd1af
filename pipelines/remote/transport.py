"""One HTTP policy for every paid API: timeouts, retries with backoff, Retry-After, a rate limit, a concurrency
cap, a circuit breaker and size-capped downloads.

Every backend sends through a :class:`Transport`, so a 429 from OpenAI and a 503 from FAL are handled the same
way and no vendor SDK's own retry loop compounds with ours. What comes out is a 2xx response with its body read,
or a :mod:`pipelines.remote.errors` error:

    401/403                       BackendAuthError     not retried
    402                           BackendBudgetError   not retried
    408/409/429/5xx, connection   BackendUnavailable   retried, then raised
    timeout                       BackendTimeout       retried, then raised
    other 4xx                     BackendInputError    not retried; message and param from the body
    breaker open                  CircuitOpen          raised before any request

A backend may pass ``classify`` to map its own error bodies first (OpenAI's ``insufficient_quota`` 429 is a
budget error, not a rate limit).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import logging
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
from aiolimiter import AsyncLimiter

from pipelines.remote.errors import (
    BackendAuthError,
    BackendBudgetError,
    BackendInputError,
    BackendTimeout,
    BackendUnavailable,
    CircuitOpen,
    RemoteError,
)

__all__ = ["CircuitBreaker", "Classify", "Transport", "TransportPolicy", "describe", "retry_after"]

logger = logging.getLogger(__name__)

Classify = Callable[[httpx.Response], RemoteError | None]
"""A backend's own reading of an error response; None falls back to the default rules."""

_T = TypeVar("_T")
_RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class TransportPolicy:
    """How a :class:`Transport` treats one API.

    Attributes:
        timeout_s: Read, write and pool timeout of one HTTP attempt.
        connect_timeout_s: Connect timeout of one attempt.
        max_retries: Retries after the first attempt (attempts = 1 + max_retries).
        backoff_base_s: Delay before retry n (0-based) is ``min(backoff_max_s, base * 2**n) * uniform(0.5, 1)``.
        backoff_max_s: Cap of the nominal backoff delay.
        max_retry_after_s: A Retry-After above this is clamped to it.
        rate_per_s: Outbound HTTP requests per second; None: unlimited.
        max_concurrent: Generations in flight at once (:meth:`Transport.slot`).
        breaker_failures: Consecutive failed calls (transient failures, after retries) that open the breaker.
        breaker_reset_s: How long the breaker stays open before one trial call is let through.
        max_download_bytes: Largest download accepted.
    """

    timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    max_retry_after_s: float = 120.0
    rate_per_s: float | None = None
    max_concurrent: int = 4
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    max_download_bytes: int = 64 * 2**20


class CircuitBreaker:
    """Stops calling an API that keeps failing.

    Closed: calls go through. After ``failures`` consecutive failed calls it opens: calls are refused with
    :class:`CircuitOpen` for ``reset_s``. Then it is half-open: one trial call goes through (others are
    refused meanwhile); its success closes the breaker, its failure opens it again.

    Args:
        failures: Consecutive failures that open it.
        reset_s: Seconds it stays open.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        """``closed``, ``open`` or ``half_open`` (open for at least ``reset_s``)."""
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self._reset_s else "open"

    def before_call(self, backend: str) -> None:
        """Lets a call through or refuses it.

        Args:
            backend: The backend's name, for the error.

        Raises:
            CircuitOpen: The breaker is open, or half-open with its trial call still running.
        """
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._trial:
            self._trial = True
            return
        assert self._opened_at is not None
        wait = max(0.0, self._opened_at + self._reset_s - self._clock()) if state == "open" else 1.0
        raise CircuitOpen(
            backend, f"circuit open after {self._failures} failures; next try in {wait:.1f} s", retry_after=wait
        )

    def record_success(self) -> None:
        """A call succeeded: closes the breaker."""
        self._failures = 0
        self._opened_at = None
        self._trial = False

    def record_failure(self) -> None:
        """A call failed transiently: opens the breaker at the threshold, or again after a failed trial."""
        self._failures += 1
        # Only a success resets the count, so a failed half-open trial is past the threshold too.
        if self._failures >= self._threshold:
            self._opened_at = self._clock()
        self._trial = False

    def release(self) -> None:
        """A call ended with neither verdict (a refused input, a cancellation): lets the next trial through."""
        self._trial = False


class Transport:
    """HTTP to one API under one :class:`TransportPolicy`.

    The httpx client is created on first use. ``headers`` (which hold the API key) are sent only to the
    origin of ``base_url``, never to another host a result URL points at, and are never logged or shown in
    ``repr``.

    Args:
        backend: The backend's name, carried by every error.
        base_url: The API's root; relative paths are appended to it.
        headers: Headers sent with every request to the API's origin (the key among them).
        policy: Timeouts, retries, rate limit, concurrency, breaker and download cap.
        classify: The backend's own error mapping, tried before the default rules.
        sleep: Awaited between retries (injectable for tests).
        clock: Monotonic seconds for the breaker (injectable for tests).
        rng: Source of the backoff jitter.
        http_transport: An httpx transport to send through instead of the network (tests).

    Attributes:
        backend: The backend's name.
        policy: The policy.
        breaker: The circuit breaker.
    """

    def __init__(
        self,
        backend: str,
        base_url: str,
        headers: Mapping[str, str],
        policy: TransportPolicy = TransportPolicy(),
        *,
        classify: Classify | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.backend = backend
        self.policy = policy
        self.breaker = CircuitBreaker(policy.breaker_failures, policy.breaker_reset_s, clock)
        self._base_url = base_url.rstrip("/")
        self._origin = httpx.URL(self._base_url or "http://localhost").copy_with(raw_path=b"/")
        self._headers = dict(headers)
        self._classify = classify
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http_transport = http_transport
        self._client: httpx.AsyncClient | None = None
        self._limiter: AsyncLimiter | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._calls = self._retries = self._failures = self._in_flight = 0

    def __repr__(self) -> str:
        return f"Transport({self.backend!r}, {self._base_url!r}, breaker={self.breaker.state!r})"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        limited: bool = True,
    ) -> httpx.Response:
        """Sends one API call, retrying transient failures.

        Args:
            method: The HTTP method.
            path: Relative to ``base_url`` (``"/v1/x"``, or ``""`` for the root itself) or an absolute URL.
            json: A JSON body.
            data: Form fields.
            files: Multipart files, as httpx takes them.
            params: Query parameters.
            headers: Extra headers for this call.
            retry: False: one attempt only (cancellations, which must not repeat).
            limited: Whether each attempt waits for the rate limiter.

        Returns:
            The 2xx response, body read.

        Raises:
            RemoteError: A subclass, by the rules in the module docstring.
        """
        url = self._url(path)
        sent = self._headers_for(url, headers)

        async def attempt() -> httpx.Response:
            client = self._http()
            try:
                response = await client.request(
                    method, url, json=json, data=data, files=files, params=params, headers=sent
                )
            except httpx.TimeoutException as exc:
                raise BackendTimeout(self.backend, f"{method} {_shown(url)}: no answer in time ({exc!r})") from exc
            except httpx.TransportError as exc:
                raise BackendUnavailable(self.backend, f"{method} {_shown(url)}: {exc!r}") from exc
            logger.debug("%s %s %s -> %d", self.backend, method, _shown(url), response.status_code)
            error = self._error(response)
            if error is not None:
                raise error
            return response

        return await self._call(attempt, retry=retry, limited=limited, guarded=True)

    async def download(self, url: str, *, limited: bool = False) -> bytes:
        """Fetches a result file, streamed and size-capped, with the same retries.

        Downloads bypass the breaker (a result already paid for is always fetched) and, unless ``limited``,
        the rate limiter (file hosts are not the API).

        Args:
            url: An absolute URL, or a ``data:<mime>;base64,...`` URL (decoded here, no request).
            limited: Whether each attempt waits for the rate limiter.

        Returns:
            The file's bytes.

        Raises:
            BackendInputError: Larger than ``max_download_bytes`` (``param="url"``), a 404 (the result is
                gone) or a malformed data URL.
            RemoteError: Other failures, as for :meth:`request`; a truncated body is retried.
        """
        cap = self.policy.max_download_bytes
        if url.startswith("data:"):
            return self._data_url(url, cap)
        sent = self._headers_for(url, None)

        async def attempt() -> bytes:
            try:
                async with self._http().stream("GET", url, headers=sent) as response:
                    if not response.is_success:
                        await response.aread()
                        if response.status_code == 404:
                            raise BackendInputError(
                                self.backend, f"HTTP 404: the result is gone ({_shown(url)})", status=404, param="url"
                            )
                        raise self._error(response) or BackendUnavailable(self.backend, f"HTTP {response.status_code}")
                    declared = _int(response.headers.get("content-length"))
                    if declared is not None and declared > cap:
                        raise self._too_large(declared)
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > cap:
                            raise self._too_large(size)
                        chunks.append(chunk)
                    # Content-Length counts the bytes on the wire, before any content-encoding is undone.
                    identity = response.headers.get("content-encoding", "identity") == "identity"
                    received = size if identity else response.num_bytes_downloaded
                    if declared is not None and received < declared:
                        raise BackendUnavailable(
                            self.backend,
                            f"truncated download: {received} of {declared} bytes",
                            status=response.status_code,
                        )
                    return b"".join(chunks)
            except httpx.TimeoutException as exc:
                raise BackendTimeout(self.backend, f"GET {_shown(url)}: no answer in time ({exc!r})") from exc
            except httpx.TransportError as exc:
                raise BackendUnavailable(self.backend, f"GET {_shown(url)}: {exc!r}") from exc

        return await self._call(attempt, retry=True, limited=limited, guarded=False)

    def slot(self) -> AbstractAsyncContextManager[None]:
        """One of ``policy.max_concurrent`` places for a generation; ``async with`` it around each API call."""
        return self._slot()

    def stats(self) -> dict[str, Any]:
        """Counters: ``calls``, ``retries``, ``failures`` (calls that raised), ``in_flight`` (slots held) and
        the ``breaker`` state."""
        return {
            "calls": self._calls,
            "retries": self._retries,
            "failures": self._failures,
            "in_flight": self._in_flight,
            "breaker": self.breaker.state,
        }

    async def aclose(self) -> None:
        """Closes the HTTP client (a later call opens a new one)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.policy.max_concurrent)
        async with self._semaphore:
            self._in_flight += 1
            try:
                yield
            finally:
                self._in_flight -= 1

    async def _call(self, attempt: Callable[[], Awaitable[_T]], *, retry: bool, limited: bool, guarded: bool) -> _T:
        """Runs ``attempt`` up to 1 + max_retries times; ``guarded`` calls go through the breaker."""
        if guarded:
            self.breaker.before_call(self.backend)
        self._calls += 1
        attempts = 1 + (self.policy.max_retries if retry else 0)
        try:
            for n in range(attempts):
                if limited:
                    await self._limit()
                try:
                    result = await attempt()
                except RemoteError as exc:
                    error = exc
                else:
                    if guarded:
                        self.breaker.record_success()
                    return result
                if not _transient(error) or n + 1 == attempts:
                    break
                delay = max(self._backoff(n), error.retry_after or 0.0)
                self._retries += 1
                logger.info("%s: %s; retry %d of %d in %.2f s", self.backend, error.message, n + 1, attempts - 1, delay)
                await self._sleep(delay)
            self._failures += 1
            if _transient(error):
                logger.warning("%s: giving up after %d attempt(s): %s", self.backend, n + 1, error.message)
                if guarded:
                    self.breaker.record_failure()
            raise error
        finally:
            if guarded:
                self.breaker.release()

    def _error(self, response: httpx.Response) -> RemoteError | None:
        """The error a non-2xx response means (None for a 2xx): ``classify`` first, then the default rules."""
        if self._classify is not None:
            custom = self._classify(response)
            if custom is not None:
                if custom.retry_after is not None:
                    custom.retry_after = min(custom.retry_after, self.policy.max_retry_after_s)
                return custom
        status = response.status_code
        if response.is_success:
            return None
        message, param, code = describe(response)
        kwargs: dict[str, Any] = {"status": status, "param": param, "code": code}
        message = f"HTTP {status}: {message}"
        if status in (401, 403):
            return BackendAuthError(self.backend, message, **kwargs)
        if status == 402:
            return BackendBudgetError(self.backend, message, **kwargs)
        if status in _RETRY_STATUSES or status >= 500:
            wait = retry_after(response)
            wait = None if wait is None else min(wait, self.policy.max_retry_after_s)
            return BackendUnavailable(self.backend, message, retry_after=wait, **kwargs)
        return BackendInputError(self.backend, message, **kwargs)

    def _backoff(self, n: int) -> float:
        nominal = min(self.policy.backoff_max_s, self.policy.backoff_base_s * 2**n)
        return nominal * self._rng.uniform(0.5, 1.0)

    async def _limit(self) -> None:
        rate = self.policy.rate_per_s
        if rate is None:
            return
        if self._limiter is None:
            # AsyncLimiter refuses to acquire more than max_rate at once, so a rate under 1/s is 1 per 1/rate s.
            self._limiter = AsyncLimiter(rate, 1.0) if rate >= 1 else AsyncLimiter(1, 1.0 / rate)
        await self._limiter.acquire()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.policy.timeout_s, connect=self.policy.connect_timeout_s)
            self._client = httpx.AsyncClient(timeout=timeout, transport=self._http_transport, follow_redirects=True)
        return self._client

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path and not path.startswith("/"):
            path = "/" + path
        return self._base_url + path

    def _headers_for(self, url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        target = httpx.URL(url)
        same_origin = (target.scheme, target.host, target.port) == (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        )
        return {**(self._headers if same_origin else {}), **(extra or {})}

    def _too_large(self, size: int) -> BackendInputError:
        cap = self.policy.max_download_bytes
        return BackendInputError(self.backend, f"download of {size} bytes is over the {cap}-byte limit", param="url")

    def _data_url(self, url: str, cap: int) -> bytes:
        header, sep, payload = url.partition(",")
        try:
            if not sep:
                raise ValueError("no comma")
            if header.endswith(";base64"):
                if len(payload) * 3 // 4 > cap + 3:
                    raise self._too_large(len(payload) * 3 // 4)
                body = base64.b64decode(payload, validate=True)
            else:
                body = urllib.parse.unquote_to_bytes(payload)
        except (ValueError, binascii.Error) as exc:
            raise BackendInputError(self.backend, f"malformed data URL ({exc})", param="url") from exc
        if len(body) > cap:
            raise self._too_large(len(body))
        return body


def describe(response: httpx.Response) -> tuple[str, str | None, str | None]:
    """Reads ``(message, param, code)`` from an error response.

    Understands ``{"error": {"message", "param", "code"}}`` (GetImg, OpenAI; ``type`` stands in for a missing
    code), ``{"detail": "..."}`` and ``{"detail": [{"loc": [...], "msg", "type"}]}`` (FAL; param is the last
    ``loc`` item) and ``{"errors": [{"message", "parameter", "code"}]}`` (Runware); anything else gives the first
    200 characters of the body.

    Args:
        response: A response whose body has been read.

    Returns:
        The message, and the param and code where the body names them.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error, detail, errors = body.get("error"), body.get("detail"), body.get("errors")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"]), _str(error.get("param")), _str(error.get("code") or error.get("type"))
        if isinstance(error, str) and error:
            return error, None, None
        if isinstance(detail, str) and detail:
            return detail, None, None
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            loc = detail[0].get("loc")
            param = _str(loc[-1]) if isinstance(loc, list) and loc else None
            return str(detail[0].get("msg", detail[0])), param, _str(detail[0].get("type"))
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("message", first)), _str(first.get("parameter")), _str(first.get("code"))
    return response.text[:200] or response.reason_phrase, None, None


def retry_after(response: httpx.Response, clock_now: float | None = None) -> float | None:
    """Seconds the response asks us to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date).

    Args:
        response: The response.
        clock_now: Wall-clock time (``time.time()``) an HTTP date is measured from; None: now.

    Returns:
        The seconds (at least 0, not clamped), or None if the headers say nothing usable.
    """
    millis = response.headers.get("retry-after-ms")
    if millis is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000.0)
    value = response.headers.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if clock_now is None else clock_now
    return max(0.0, when.timestamp() - now)


def _transient(error: RemoteError) -> bool:
    return type(error) in (BackendUnavailable, BackendTimeout)


def _shown(url: str) -> str:
    """A URL fit for a log line: no query string, at most 120 characters."""
    return url.split("?", 1)[0][:120]


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None
