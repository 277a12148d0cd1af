"""pipelines/remote/transport.py and errors.py: retries, Retry-After, backoff, rate limit, slots, breaker,
downloads, error bodies and secrecy, against httpx.MockTransport and a real local server (uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import pickle
import random
import socket
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from pipelines.remote.errors import (
    BackendAuthError,
    BackendBudgetError,
    BackendInputError,
    BackendTimeout,
    BackendUnavailable,
    CircuitOpen,
    RemoteError,
)
from pipelines.remote.transport import CircuitBreaker, Transport, TransportPolicy, describe, retry_after

SECRET = "sk-very-secret-0123456789"
HEADERS = {"Authorization": f"Bearer {SECRET}"}
FAST = TransportPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)
ERROR_BODY = {"error": {"message": "boom", "param": "width", "code": "bad_size"}}


class Sleeps:
    """A fake ``sleep`` that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


# --- the real server ------------------------------------------------------------------------------------------

HITS: Counter[str] = Counter()


def _failure(status: int, request: Request) -> Response:
    headers = {}
    if "ra" in request.query_params:
        headers["retry-after"] = request.query_params["ra"]
    if "ra_ms" in request.query_params:
        headers["retry-after-ms"] = request.query_params["ra_ms"]
    return JSONResponse(ERROR_BODY, status_code=status, headers=headers)


class _Short(Response):
    """Declares 100 bytes and sends 50: uvicorn then drops the connection mid-body."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"x" * 50})


def _app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/flaky", methods=["GET", "POST", "PUT"])
    async def flaky(request: Request, key: str, status: int = 503, times: int = 1) -> Response:
        HITS[key] += 1
        if HITS[key] <= times:
            return _failure(status, request)
        return JSONResponse({"ok": True, "hits": HITS[key]})

    @app.get("/sleep")
    async def sleep(key: str, s: float) -> dict[str, bool]:
        HITS[key] += 1
        await asyncio.sleep(s)
        return {"ok": True}

    @app.get("/truncate")
    async def truncate(key: str, times: int = 1) -> Response:
        HITS[key] += 1
        return _Short() if HITS[key] <= times else Response(b"x" * 100)

    @app.get("/bytes")
    async def data(key: str, n: int, chunked: bool = False) -> Response:
        HITS[key] += 1
        if not chunked:
            return Response(b"b" * n, media_type="application/octet-stream")

        async def chunks() -> Any:
            for start in range(0, n, 1000):
                yield b"c" * min(1000, n - start)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_app(), log_level="critical", access_log=False, lifespan="off", ws="none")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    uv.should_exit = True
    thread.join(10)
    sock.close()


def _key() -> str:
    return uuid.uuid4().hex


# --- the same /flaky route, in-process ------------------------------------------------------------------------


def _mock_flaky(hits: Counter[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params
        key, status, times = query["key"], int(query.get("status", 503)), int(query.get("times", 1))
        hits[key] += 1
        if hits[key] <= times:
            headers = {}
            if "ra" in query:
                headers["retry-after"] = query["ra"]
            if "ra_ms" in query:
                headers["retry-after-ms"] = query["ra_ms"]
            return httpx.Response(status, json=ERROR_BODY, headers=headers)
        return httpx.Response(200, json={"ok": True, "hits": hits[key]})

    return httpx.MockTransport(handler)


@pytest.fixture
async def opened() -> AsyncIterator[list[Transport]]:
    """Transports to close after the test, even when it fails (no unclosed sockets)."""
    transports: list[Transport] = []
    yield transports
    for transport in transports:
        await transport.aclose()


@pytest.fixture
def real(server: str, opened: list[Transport]) -> Callable[..., Transport]:
    """Makes a Transport to the real server."""

    def make(policy: TransportPolicy = FAST, **kwargs: Any) -> Transport:
        opened.append(Transport("fake", server, HEADERS, policy, **kwargs))
        return opened[-1]

    return make


@pytest.fixture(params=["mock", "server"])
def flaky(request: pytest.FixtureRequest, opened: list[Transport]) -> Callable[..., tuple[Transport, Counter[str]]]:
    """Makes a Transport whose ``/flaky`` route lives in a MockTransport or on the real server."""

    def make(policy: TransportPolicy = FAST, **kwargs: Any) -> tuple[Transport, Counter[str]]:
        if request.param == "mock":
            hits: Counter[str] = Counter()
            mock = _mock_flaky(hits)
            return Transport("fake", "http://api.test", HEADERS, policy, http_transport=mock, **kwargs), hits
        opened.append(Transport("fake", request.getfixturevalue("server"), HEADERS, policy, **kwargs))
        return opened[-1], HITS

    return make


def _mock(handler: Callable[[httpx.Request], httpx.Response], policy: TransportPolicy = FAST, **kw: Any) -> Transport:
    return Transport("fake", "http://api.test/v1/", HEADERS, policy, http_transport=httpx.MockTransport(handler), **kw)


# --- retries by status ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(flaky: Any, status: int) -> None:
    sleeps = Sleeps()
    transport, hits = flaky(sleep=sleeps)
    key = _key()
    response = await transport.request("GET", f"/flaky?key={key}&status={status}&times=2")
    assert response.status_code == 200 and response.json()["hits"] == 3
    assert hits[key] == 3 and len(sleeps.delays) == 2
    assert transport.stats()["retries"] == 2
    await transport.aclose()


@pytest.mark.parametrize("status", [429, 503])
async def test_exhausted_retries_raise_unavailable(flaky: Any, status: int) -> None:
    transport, hits = flaky(sleep=Sleeps())
    key = _key()
    with pytest.raises(BackendUnavailable) as info:
        await transport.request("POST", f"/flaky?key={key}&status={status}&times=99", json={"a": 1})
    assert type(info.value) is BackendUnavailable
    assert hits[key] == 1 + FAST.max_retries
    assert info.value.status == status and "boom" in info.value.message and info.value.backend == "fake"
    assert transport.stats()["failures"] == 1
    await transport.aclose()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BackendInputError),
        (401, BackendAuthError),
        (402, BackendBudgetError),
        (403, BackendAuthError),
        (404, BackendInputError),
        (413, BackendInputError),
        (422, BackendInputError),
    ],
)
async def test_permanent_statuses_are_not_retried(flaky: Any, status: int, kind: type[RemoteError]) -> None:
    sleeps = Sleeps()
    transport, hits = flaky(sleep=sleeps)
    key = _key()
    with pytest.raises(kind) as info:
        await transport.request("GET", f"/flaky?key={key}&status={status}&times=99")
    assert type(info.value) is kind and info.value.permanent
    assert hits[key] == 1 and sleeps.delays == []
    assert info.value.status == status and info.value.param == "width" and info.value.code == "bad_size"
    await transport.aclose()


async def test_retry_false_makes_one_attempt(flaky: Any) -> None:
    transport, hits = flaky(sleep=Sleeps())
    key = _key()
    with pytest.raises(BackendUnavailable):
        await transport.request("PUT", f"/flaky?key={key}&status=503&times=99", retry=False)
    assert hits[key] == 1
    await transport.aclose()


async def test_connection_errors_are_retried_then_unavailable() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    transport = _mock(handler, sleep=Sleeps())
    with pytest.raises(BackendUnavailable, match="ConnectError"):
        await transport.request("GET", "/x")
    assert len(calls) == 1 + FAST.max_retries


async def test_a_closed_port_is_unavailable(opened: list[Transport]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    transport = Transport("fake", f"http://127.0.0.1:{port}", HEADERS, FAST, sleep=Sleeps())
    opened.append(transport)
    with pytest.raises(BackendUnavailable):
        await transport.request("GET", "/")
    assert transport.stats()["retries"] == FAST.max_retries


# --- Retry-After and backoff ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [("ra=2", 2.0), ("ra_ms=1500", 1.5), ("ra=1000", 10.0), ("ra_ms=999999", 10.0), ("ra=0", None)],
)
async def test_retry_after_is_honoured_and_clamped(flaky: Any, query: str, expected: float | None) -> None:
    sleeps = Sleeps()
    transport, _ = flaky(TransportPolicy(backoff_base_s=0.01, backoff_max_s=0.01, max_retry_after_s=10.0), sleep=sleeps)
    await transport.request("GET", f"/flaky?key={_key()}&status=429&times=1&{query}")
    assert len(sleeps.delays) == 1
    if expected is None:  # 0 s: the backoff wins
        assert 0.005 <= sleeps.delays[0] <= 0.01
    else:
        assert sleeps.delays[0] == pytest.approx(expected)
    await transport.aclose()


async def test_retry_after_http_date(flaky: Any) -> None:
    sleeps = Sleeps()
    transport, _ = flaky(TransportPolicy(backoff_base_s=0.01, backoff_max_s=0.01), sleep=sleeps)
    date = urllib.parse.quote(email.utils.formatdate(time.time() + 6, usegmt=True))
    await transport.request("GET", f"/flaky?key={_key()}&status=503&times=1&ra={date}")
    assert 4.0 <= sleeps.delays[0] <= 6.0
    await transport.aclose()


def test_retry_after_parsing() -> None:
    def response(**headers: str) -> httpx.Response:
        return httpx.Response(429, headers={k.replace("_", "-"): v for k, v in headers.items()})

    assert retry_after(response()) is None
    assert retry_after(response(retry_after="7")) == 7.0
    assert retry_after(response(retry_after="1.5")) == 1.5
    assert retry_after(response(retry_after_ms="250")) == 0.25
    assert retry_after(response(retry_after_ms="250", retry_after="9")) == 0.25  # the precise one first
    assert retry_after(response(retry_after="-3")) == 0.0
    assert retry_after(response(retry_after="soon")) is None
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    at = email.utils.parsedate_to_datetime(date).timestamp()
    assert retry_after(response(retry_after=date), clock_now=at - 30) == pytest.approx(30.0)
    assert retry_after(response(retry_after=date), clock_now=at + 30) == 0.0


class _Extreme(random.Random):
    """Jitter pinned to one end of its range, recording what it was asked for."""

    def __init__(self, pick: str) -> None:
        super().__init__(0)
        self.pick, self.asked = pick, []

    def uniform(self, a: float, b: float) -> float:
        self.asked.append((a, b))
        return a if self.pick == "low" else b


@pytest.mark.parametrize("pick", ["low", "high"])
async def test_backoff_doubles_to_its_cap_with_jitter_bounds(pick: str) -> None:
    policy = TransportPolicy(max_retries=6, backoff_base_s=0.5, backoff_max_s=4.0)
    sleeps, rng = Sleeps(), _Extreme(pick)
    transport = _mock(lambda r: httpx.Response(503), policy, sleep=sleeps, rng=rng)
    with pytest.raises(BackendUnavailable):
        await transport.request("GET", "/x")
    nominal = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    factor = 0.5 if pick == "low" else 1.0
    assert sleeps.delays == pytest.approx([n * factor for n in nominal])
    assert rng.asked == [(0.5, 1.0)] * 6


async def test_backoff_with_real_jitter_stays_in_range() -> None:
    policy = TransportPolicy(max_retries=8, backoff_base_s=0.25, backoff_max_s=2.0)
    sleeps = Sleeps()
    transport = _mock(lambda r: httpx.Response(500), policy, sleep=sleeps, rng=random.Random(7))
    with pytest.raises(BackendUnavailable):
        await transport.request("GET", "/x")
    assert len(sleeps.delays) == 8
    for n, delay in enumerate(sleeps.delays):
        nominal = min(2.0, 0.25 * 2**n)
        assert 0.5 * nominal <= delay <= nominal <= policy.backoff_max_s
    assert len(set(sleeps.delays)) > 1  # jittered, not constant


# --- timeouts and truncated bodies (real server) --------------------------------------------------------------


async def test_timeout_is_retried_then_backend_timeout(server: str, real: Any) -> None:
    sleeps = Sleeps()
    policy = TransportPolicy(timeout_s=0.2, max_retries=1, backoff_base_s=0.01)
    transport = real(policy, sleep=sleeps)
    key = _key()
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as info:
        await transport.request("GET", f"/sleep?key={key}&s=2")
    assert type(info.value) is BackendTimeout and not info.value.permanent
    assert HITS[key] == 2 and len(sleeps.delays) == 1
    assert time.monotonic() - started < 1.5
    assert transport.breaker.state == "closed"  # one failed call of five
    await transport.aclose()


async def test_truncated_body_is_retried(server: str, real: Any) -> None:
    transport = real(FAST, sleep=Sleeps())
    key = _key()
    response = await transport.request("GET", f"/truncate?key={key}&times=2")
    assert response.content == b"x" * 100 and HITS[key] == 3
    key = _key()
    assert await transport.download(f"{server}/truncate?key={key}&times=1") == b"x" * 100
    assert HITS[key] == 2
    key = _key()
    with pytest.raises(BackendUnavailable):
        await transport.download(f"{server}/truncate?key={key}&times=99")
    assert HITS[key] == 1 + FAST.max_retries
    await transport.aclose()


async def test_truncated_download_is_retried_mock() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:  # declares more than it sends
            return httpx.Response(200, headers={"content-length": "10"}, content=b"12345")
        return httpx.Response(200, content=b"1234567890")

    transport = _mock(handler, sleep=Sleeps())
    assert await transport.download("http://api.test/file.png") == b"1234567890"
    assert len(calls) == 2


# --- rate limit and slots -------------------------------------------------------------------------------------


async def test_rate_limit_holds_with_a_real_clock() -> None:
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return httpx.Response(200)

    n, rate = 30, 20.0
    transport = _mock(handler, TransportPolicy(rate_per_s=rate))
    started = time.monotonic()
    await asyncio.gather(*(transport.request("GET", "/x") for _ in range(n)))
    elapsed = time.monotonic() - started
    assert (n - rate) / rate - 0.05 <= elapsed < (n - rate) / rate + 0.5
    assert len(times) == n

    unlimited = time.monotonic()
    await asyncio.gather(*(transport.request("GET", "/x", limited=False) for _ in range(n)))
    assert time.monotonic() - unlimited < 0.3


async def test_fractional_and_small_rates() -> None:
    transport = _mock(lambda r: httpx.Response(200), TransportPolicy(rate_per_s=4.0))
    started = time.monotonic()
    await asyncio.gather(*(transport.request("GET", "/x") for _ in range(6)))
    assert time.monotonic() - started >= (6 - 4) / 4 - 0.05
    slow = _mock(lambda r: httpx.Response(200), TransportPolicy(rate_per_s=0.5))
    await slow.request("GET", "/x")  # the first is free
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow.request("GET", "/x"), 0.3)


async def test_slot_caps_concurrency() -> None:
    transport = _mock(lambda r: httpx.Response(200), TransportPolicy(max_concurrent=3))
    current = peak = 0
    seen_in_flight = []

    async def work() -> None:
        nonlocal current, peak
        async with transport.slot():
            current += 1
            peak = max(peak, current)
            seen_in_flight.append(transport.stats()["in_flight"])
            await asyncio.sleep(0.01)
            current -= 1

    await asyncio.gather(*(work() for _ in range(10)))
    assert peak == 3 and max(seen_in_flight) == 3
    assert transport.stats()["in_flight"] == 0


# --- circuit breaker ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_breaker_opens_refuses_half_opens_closes_and_reopens() -> None:
    clock, status, calls = Clock(), [503], []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status[0], json=ERROR_BODY)

    policy = TransportPolicy(max_retries=1, breaker_failures=3, breaker_reset_s=30.0, backoff_base_s=0.01)
    transport = _mock(handler, policy, sleep=Sleeps(), clock=clock)
    for _ in range(3):
        assert transport.breaker.state == "closed"
        with pytest.raises(BackendUnavailable):
            await transport.request("GET", "/x")
    assert transport.breaker.state == "open" and len(calls) == 6  # 3 calls of 2 attempts each

    clock.now += 10
    with pytest.raises(CircuitOpen) as info:
        await transport.request("GET", "/x")
    assert len(calls) == 6  # refused without a request
    assert info.value.retry_after == pytest.approx(20.0) and "3 failures" in info.value.message
    assert isinstance(info.value, BackendUnavailable) and info.value.error_type == "backend_unavailable"

    clock.now += 20
    assert transport.breaker.state == "half_open"
    status[0] = 200
    await transport.request("GET", "/x")
    assert transport.breaker.state == "closed" and len(calls) == 7

    status[0] = 503
    for _ in range(3):
        with pytest.raises(BackendUnavailable):
            await transport.request("GET", "/x")
    clock.now += 30
    assert transport.breaker.state == "half_open"
    with pytest.raises(BackendUnavailable) as trial:
        await transport.request("GET", "/x")  # the trial fails: open again at once
    assert type(trial.value) is BackendUnavailable
    assert transport.breaker.state == "open"
    before = len(calls)
    with pytest.raises(CircuitOpen):
        await transport.request("GET", "/x")
    assert len(calls) == before
    assert transport.stats()["breaker"] == "open"


async def test_breaker_counts_consecutive_transient_failures_only() -> None:
    statuses = [503, 503, 200, 503, 503, 400, 401, 402, 404]
    replies = iter([*statuses, 503])
    transport = _mock(lambda r: httpx.Response(next(replies)), TransportPolicy(max_retries=0, breaker_failures=3))
    for status in statuses:
        if status == 200:
            await transport.request("GET", "/x")  # a success resets the count
        else:
            with pytest.raises(RemoteError):  # input, auth and budget errors leave it alone
                await transport.request("GET", "/x")
        assert transport.breaker.state == "closed"
    with pytest.raises(BackendUnavailable):
        await transport.request("GET", "/x")
    assert transport.breaker.state == "open"


def test_breaker_lets_one_trial_through_when_half_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 5.0, clock)
    breaker.record_failure()
    breaker.before_call("b")
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 5
    breaker.before_call("b")  # the trial
    with pytest.raises(CircuitOpen):
        breaker.before_call("b")  # a second caller while the trial runs
    breaker.release()  # the trial ended without a verdict (e.g. a refused input)
    breaker.before_call("b")
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call("b")


async def test_half_open_trial_with_an_input_error_does_not_wedge_the_breaker() -> None:
    clock, statuses = Clock(), iter([503, 400, 200])
    transport = _mock(
        lambda r: httpx.Response(next(statuses)),
        TransportPolicy(max_retries=0, breaker_failures=1, breaker_reset_s=1.0),
        clock=clock,
    )
    with pytest.raises(BackendUnavailable):
        await transport.request("GET", "/x")
    clock.now += 1
    with pytest.raises(BackendInputError):
        await transport.request("GET", "/x")
    assert transport.breaker.state == "half_open"
    await transport.request("GET", "/x")
    assert transport.breaker.state == "closed"


# --- downloads ------------------------------------------------------------------------------------------------


async def test_download_refuses_a_declared_length_over_the_cap() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=b"z" * 2000)

    transport = _mock(handler, TransportPolicy(max_download_bytes=1999), sleep=Sleeps())
    with pytest.raises(BackendInputError) as info:
        await transport.download("http://cdn.test/big.png")
    assert info.value.param == "url" and "2000" in info.value.message and len(calls) == 1
    exact = _mock(handler, TransportPolicy(max_download_bytes=2000))
    assert await exact.download("http://cdn.test/big.png") == b"z" * 2000


async def test_download_refuses_a_declared_length_before_reading_the_body() -> None:
    async def body() -> Any:
        raise AssertionError("the body was read")
        yield b""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": str(10**9)}, content=body())

    with pytest.raises(BackendInputError, match="1000000000 bytes"):
        await _mock(handler, TransportPolicy(max_download_bytes=1000)).download("http://cdn.test/huge")


@pytest.mark.parametrize("chunked", [False, True])
async def test_download_cap_on_the_real_server(server: str, real: Any, chunked: bool) -> None:
    transport = real(TransportPolicy(max_download_bytes=5000), sleep=Sleeps())
    assert len(await transport.download(f"{server}/bytes?key={_key()}&n=5000&chunked={chunked}")) == 5000
    key = _key()
    with pytest.raises(BackendInputError) as info:
        await transport.download(f"{server}/bytes?key={key}&n=5001&chunked={chunked}")
    assert info.value.param == "url" and HITS[key] == 1
    await transport.aclose()


async def test_download_streamed_without_content_length_is_capped() -> None:
    async def body() -> Any:
        for _ in range(10):
            yield b"q" * 100

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    transport = _mock(handler, TransportPolicy(max_download_bytes=950))
    with pytest.raises(BackendInputError, match="over the 950-byte limit"):
        await transport.download("http://cdn.test/x")
    assert len(await _mock(handler, TransportPolicy(max_download_bytes=1000)).download("http://cdn.test/x")) == 1000


async def test_download_404_means_the_result_is_gone(server: str, real: Any) -> None:
    transport = real(FAST, sleep=Sleeps())
    key = _key()
    with pytest.raises(BackendInputError) as info:
        await transport.download(f"{server}/flaky?key={key}&status=404&times=9")
    assert info.value.param == "url" and info.value.status == 404 and HITS[key] == 1
    key = _key()
    assert await transport.download(f"{server}/flaky?key={key}&status=503&times=2") == b'{"ok":true,"hits":3}'
    await transport.aclose()


async def test_data_urls_are_decoded_without_a_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request for a data: URL")

    transport = _mock(handler, TransportPolicy(max_download_bytes=64))
    payload = bytes(range(48))
    assert await transport.download("data:image/png;base64," + base64.b64encode(payload).decode()) == payload
    assert await transport.download("data:text/plain,hello%20world") == b"hello world"
    with pytest.raises(BackendInputError) as info:
        await transport.download("data:image/png;base64," + base64.b64encode(bytes(65)).decode())
    assert info.value.param == "url"
    with pytest.raises(BackendInputError, match="malformed"):
        await transport.download("data:image/png;base64,@@@not base64@@@")
    with pytest.raises(BackendInputError, match="malformed"):
        await transport.download("data:image/png;base64")


async def test_secret_headers_go_only_to_the_api_origin() -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[str(request.url)] = request.headers.get("authorization")
        return httpx.Response(200, content=b"ok")

    transport = _mock(handler)
    await transport.request("GET", "")
    await transport.request("POST", "/tasks", headers={"x-extra": "1"})
    await transport.request("GET", "http://api.test/elsewhere")
    await transport.download("http://api.test/v1/files/1.png")
    await transport.download("https://cdn.other.test/1.png")
    assert seen == {
        "http://api.test/v1": f"Bearer {SECRET}",
        "http://api.test/v1/tasks": f"Bearer {SECRET}",
        "http://api.test/elsewhere": f"Bearer {SECRET}",
        "http://api.test/v1/files/1.png": f"Bearer {SECRET}",
        "https://cdn.other.test/1.png": None,
    }


# --- classify -------------------------------------------------------------------------------------------------


async def test_classify_overrides_the_default_rules() -> None:
    def classify(response: httpx.Response) -> RemoteError | None:
        if response.status_code == 429 and response.json().get("code") == "insufficient_quota":
            return BackendBudgetError("fake", "out of credit", status=429)
        if response.status_code == 200 and "errors" in response.json():
            return BackendUnavailable("fake", "busy", retry_after=500.0)
        return None

    bodies = iter([(429, {"code": "insufficient_quota"}), (200, {"errors": []}), (200, {"ok": 1}), (429, {})])
    sleeps = Sleeps()

    def handler(request: httpx.Request) -> httpx.Response:
        status, body = next(bodies)
        return httpx.Response(status, json=body)

    transport = _mock(handler, TransportPolicy(max_retry_after_s=7.0), classify=classify, sleep=sleeps)
    with pytest.raises(BackendBudgetError):
        await transport.request("POST", "/x")
    assert sleeps.delays == []  # final: not retried
    assert (await transport.request("POST", "/x")).json() == {"ok": 1}  # retried like a 5xx, Retry-After clamped
    assert sleeps.delays == [7.0]
    with pytest.raises(BackendUnavailable):  # classify said nothing: the default rules (429 retried)
        await transport.request("POST", "/x", retry=False)


# --- error bodies ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": "bad size", "param": "width", "code": "invalid"}}, ("bad size", "width", "invalid")),
        ({"error": {"message": "quota", "type": "insufficient_quota", "param": None, "code": None}},
         ("quota", None, "insufficient_quota")),
        ({"detail": "Request not found"}, ("Request not found", None, None)),
        ({"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]},
         ("field required", "prompt", "missing")),
        ({"errors": [{"code": "invalidWidth", "message": "width must be a multiple of 64", "parameter": "width",
                      "taskType": "imageInference"}]},
         ("width must be a multiple of 64", "width", "invalidWidth")),
        ({"error": "plain string"}, ("plain string", None, None)),
    ],
)  # fmt: skip
def test_describe_documented_bodies(body: dict[str, Any], expected: tuple[Any, ...]) -> None:
    assert describe(httpx.Response(400, json=body)) == expected


def test_describe_other_bodies() -> None:
    assert describe(httpx.Response(502, text="x" * 500)) == ("x" * 200, None, None)
    assert describe(httpx.Response(503)) == ("Service Unavailable", None, None)
    assert describe(httpx.Response(400, json={"unexpected": True})) == ('{"unexpected":true}', None, None)


async def test_fal_validation_error_names_the_param() -> None:
    body = {"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]}
    transport = _mock(lambda r: httpx.Response(422, json=body))
    with pytest.raises(BackendInputError) as info:
        await transport.request("POST", "/fal-ai/fast-sdxl", json={})
    assert info.value.param == "prompt" and str(info.value) == "fake: HTTP 422: field required"


# --- errors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    [RemoteError, BackendAuthError, BackendBudgetError, BackendInputError, BackendTimeout, BackendUnavailable,
     CircuitOpen],
)  # fmt: skip
def test_errors_pickle_with_all_fields(cls: type[RemoteError]) -> None:
    error = cls("runware", "it broke", status=503, param="width", retry_after=2.5, code="oops")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    fields = ("backend", "message", "status", "param", "retry_after", "code", "error_type", "permanent")
    assert {f: getattr(copy, f) for f in fields} == {f: getattr(error, f) for f in fields}
    assert str(copy) == "runware: it broke"


def test_error_kinds() -> None:
    assert [c.permanent for c in (BackendAuthError, BackendBudgetError, BackendInputError)] == [True] * 3
    assert [c.permanent for c in (RemoteError, BackendTimeout, BackendUnavailable, CircuitOpen)] == [False] * 4
    types = {c.error_type for c in (BackendAuthError, BackendBudgetError, BackendInputError, BackendTimeout)}
    assert types == {"backend_auth", "backend_budget", "backend_input", "backend_timeout"}
    assert CircuitOpen.error_type == BackendUnavailable.error_type == "backend_unavailable"
    assert RemoteError("x", "y").error_type == "backend_error"


# --- secrecy --------------------------------------------------------------------------------------------------


async def test_secret_never_in_repr_or_logs(server: str, real: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    transport = real(FAST, sleep=Sleeps())
    assert SECRET not in repr(transport) and "fake" in repr(transport)
    await transport.request("GET", f"/flaky?key={_key()}&status=503&times=2")
    with pytest.raises(BackendAuthError) as auth:
        await transport.request("GET", f"/flaky?key={_key()}&status=401&times=9")
    with pytest.raises(BackendUnavailable) as down:
        await transport.request("GET", f"/flaky?key={_key()}&status=500&times=9")
    await transport.download(f"{server}/bytes?key={_key()}&n=10")
    mocked = _mock(lambda r: httpx.Response(503), sleep=Sleeps())
    with pytest.raises(BackendUnavailable):
        await mocked.request("GET", "/x")
    await transport.aclose()
    assert len(caplog.records) > 5  # the transport's and httpx's records were captured
    assert any(r.name == "pipelines.remote.transport" and r.levelno == logging.DEBUG for r in caplog.records)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in str(record.__dict__)
    assert SECRET not in str(auth.value) + repr(auth.value) + str(down.value)
    assert SECRET not in repr(transport.stats())


async def test_client_is_lazy_and_reopens_after_close() -> None:
    calls = []
    transport = _mock(lambda r: calls.append(r) or httpx.Response(200))
    assert transport.stats() == {"calls": 0, "retries": 0, "failures": 0, "in_flight": 0, "breaker": "closed"}
    await transport.aclose()  # nothing opened yet
    await transport.request("GET", "/x")
    await transport.aclose()
    await transport.request("GET", "/y")
    assert [str(r.url) for r in calls] == ["http://api.test/v1/x", "http://api.test/v1/y"]
    assert transport.stats()["calls"] == 2
