"""Per-key inbound rate limits: the rate, the decision, the limiter Protocol and the response headers.

Algorithm: GCRA, i.e. a token bucket of ``limit`` units that refills continuously at ``limit`` units per
``window_s`` seconds (burst = ``limit``). A full bucket can be spent at once; after that one unit comes back
every ``window_s / limit`` seconds. A hit of ``cost`` units either consumes them all or, refused, consumes
nothing. A ``cost`` larger than ``limit`` can never fit: it is refused with ``retry_after_s`` equal to the
window (retrying cannot help, but the client is told to back off for a whole window rather than at once).

Both backends run the same integer arithmetic (:func:`gcra`), on time in whole milliseconds: the bucket is
held as a *debt* in units of ``1 / (limit * window_ms)`` of the bucket, so refilling and spending are exact
(no float drift in ``remaining``). The memory backend keeps that in a dict (one process); the Redis backend
in one hash per key, updated by a Lua script that reads the server's ``TIME``, so every replica shares one
quota and one clock.

Headers follow draft-ietf-httpapi-ratelimit-headers-09 ("RateLimit header fields for HTTP", Polli,
Martinez, Miller, March 2025, https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/): two
Structured-Field Lists (RFC 8941), each member a String naming the policy with Integer parameters::

    RateLimit-Policy: "requests";q=60;w=60, "images";q=100;w=86400
    RateLimit: "requests";r=59;t=1, "images";r=97;t=2592

``q`` is the quota, ``w`` the window in seconds, ``r`` the units left and ``t`` the seconds until the quota
is fully available again (here: the bucket is full). ``Retry-After`` (RFC 9110, delay-seconds) is added
when a hit was refused.

Errors: bad rates and costs raise :class:`ValueError` naming the parameter, the value and what is allowed;
backend failures (Redis down) propagate as the client library raised them: whether to fail open is the
caller's choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["MAX_SCALE", "Decision", "Rate", "RateLimiter", "check_cost", "gcra", "headers", "to_decision"]

#: Bound on ``limit * window_ms`` so every number the Redis script (Lua doubles) handles stays exact.
MAX_SCALE = 2**50


@dataclass(frozen=True)
class Rate:
    """A quota: ``limit`` units per ``window_s`` seconds, refilled continuously.

    Attributes:
        name: Policy name used in the headers, e.g. ``"requests"``, ``"images"`` (printable ASCII).
        limit: The quota (also the burst).
        window_s: The window in seconds (60 for per-minute, 86400 for per-day); counted in whole
            milliseconds.

    Raises:
        ValueError: A field is out of range.
    """

    name: str
    limit: int
    window_s: float

    def __post_init__(self) -> None:
        if not self.name or not all(" " <= ch <= "~" for ch in self.name):
            raise ValueError(f"Rate.name must be non-empty printable ASCII, got {self.name!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"Rate.limit must be an int >= 1, got {self.limit!r}")
        window_ms = round(self.window_s * 1000) if math.isfinite(self.window_s) else 0
        if window_ms < 1:
            raise ValueError(f"Rate.window_s must be finite and >= 0.001, got {self.window_s!r}")
        if self.limit * window_ms > MAX_SCALE:
            raise ValueError(
                f"Rate.limit * window in ms must be <= 2**50, got {self.limit} * {window_ms}: use a shorter window"
            )

    @property
    def window_ms(self) -> int:
        """The window in whole milliseconds (what the backends count in)."""
        return round(self.window_s * 1000)

    @property
    def bucket_id(self) -> str:
        """The rate's identity inside a key's state (changing the limit or window starts a fresh bucket)."""
        return f"{self.name}:{self.limit}:{self.window_ms}"


@dataclass(frozen=True)
class Decision:
    """The outcome of a hit (or a peek) against one rate.

    Attributes:
        rate: The rate decided on.
        allowed: Whether the units were consumed (for a peek: whether one unit is available now).
        remaining: Units left after this hit (0 when refused; for a peek, the units available now).
        reset_s: Seconds until the bucket is full again (the draft's ``t``); 0 when full.
        retry_after_s: ``None`` when allowed; else seconds until ``cost`` units are available (the window
            when ``cost`` exceeds the limit and can never fit).
    """

    rate: Rate
    allowed: bool
    remaining: int
    reset_s: float
    retry_after_s: float | None


def check_cost(cost: int) -> None:
    """Raise :class:`ValueError` unless ``cost`` is an int >= 1 (what :meth:`RateLimiter.hit` accepts)."""
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ValueError(f"cost must be an int >= 1, got {cost!r}")


def gcra(debt: int, rate: Rate, cost: int) -> tuple[bool, int, int, int | None]:
    """One GCRA step on an already drained debt; the Redis script mirrors it line for line.

    The bucket's capacity is ``limit * window_ms`` and one unit costs ``window_ms``; every millisecond
    drains ``limit`` from the debt (the caller drains before calling).

    Args:
        debt: The debt now, in ``[0, limit * window_ms]``.
        rate: The rate.
        cost: Units to consume; ``0`` peeks (asks whether one unit is available, consuming nothing).

    Returns:
        ``(allowed, remaining, new_debt, retry_debt)``: ``new_debt`` is what to store (unchanged unless a
        hit was allowed); ``retry_debt`` is how much debt must drain before the hit fits (divide by
        ``limit`` for milliseconds), ``-1`` when the cost exceeds the limit, ``None`` when allowed.
    """
    period = rate.window_ms
    cap = rate.limit * period
    if cost == 0:
        available = (cap - debt) // period
        if available >= 1:
            return True, available, debt, None
        return False, 0, debt, debt + period - cap
    if cost > rate.limit:
        return False, 0, debt, -1
    new = debt + cost * period
    if new <= cap:
        return True, (cap - new) // period, new, None
    return False, 0, debt, new - cap


def to_decision(rate: Rate, allowed: bool, remaining: int, debt: int, retry_debt: int | None) -> Decision:
    """Turn a GCRA step's integers into a :class:`Decision` (shared by the backends)."""
    scale = rate.limit * 1000
    if retry_debt is None:
        retry = None
    elif retry_debt < 0:
        retry = float(rate.window_s)
    else:
        retry = retry_debt / scale
    return Decision(rate=rate, allowed=allowed, remaining=remaining, reset_s=debt / scale, retry_after_s=retry)


@runtime_checkable
class RateLimiter(Protocol):
    """Per-key quotas: each ``(key, rate)`` pair has its own bucket."""

    async def hit(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """Atomically consume ``cost`` units of ``key``'s ``rate``, or refuse, consuming nothing.

        Raises:
            ValueError: ``cost`` is not an int >= 1.
        """
        ...

    async def peek(self, key: str, rate: Rate) -> Decision:
        """The state of ``key``'s ``rate`` without consuming (``allowed``: one unit is available now)."""
        ...

    async def reset(self, key: str) -> None:
        """Forget ``key`` (every rate of it)."""
        ...

    async def close(self) -> None:
        """Release what the limiter holds (its own connections)."""
        ...


def _sf_string(value: str) -> str:
    # RFC 8941 sf-string: printable ASCII (Rate checks it) in quotes, with '"' and '\' escaped.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ceil_s(seconds: float) -> int:
    # Round up to whole seconds, ignoring float noise below a microsecond (1.0000000001 is 1, not 2).
    return max(0, math.ceil(round(seconds, 6)))


def headers(decisions: Sequence[Decision]) -> dict[str, str]:
    """The ``RateLimit-Policy``, ``RateLimit`` and (when refused) ``Retry-After`` response headers.

    Args:
        decisions: One decision per rate applied to the request, in the order to advertise them.

    Returns:
        The headers (none for no decisions). ``w`` is the window rounded up to whole seconds (at least 1),
        ``t`` the reset rounded up; ``Retry-After`` is the largest retry among the refused decisions, rounded
        up, at least 1.
    """
    if not decisions:
        return {}
    policy = ", ".join(
        f"{_sf_string(d.rate.name)};q={d.rate.limit};w={max(1, _ceil_s(d.rate.window_s))}" for d in decisions
    )
    state = ", ".join(f"{_sf_string(d.rate.name)};r={max(0, d.remaining)};t={_ceil_s(d.reset_s)}" for d in decisions)
    out = {"RateLimit-Policy": policy, "RateLimit": state}
    retries = [d.retry_after_s for d in decisions if not d.allowed and d.retry_after_s is not None]
    if retries:
        out["Retry-After"] = str(max(1, _ceil_s(max(retries))))
    return out
