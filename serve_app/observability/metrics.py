"""limner's Prometheus metrics, recorded through Ray's metrics export.

Every metric limner records beyond the per-stage ones of the deployments (``limner_generator_*``) is declared once
in :data:`METRICS`: its kind, its tag keys (Ray requires them up front) and, for histograms, its buckets. Callers
never touch a metric object; they call one method of the process's :class:`Metrics`::

    from serve_app.observability.metrics import metrics

    metrics().cache_lookup("result", "hit")

:func:`metrics` returns one instance per process, made on first use: :class:`RayMetrics` inside a Ray worker (a
Serve replica), else :class:`NullMetrics`, which records nothing. Tests install a :class:`RecordingMetrics` with
:func:`use_metrics`.

Ray exports each metric with the ``ray_`` namespace prefix, so ``limner_http_requests_total`` is scraped as
``ray_limner_http_requests_total`` (histograms as ``ray_<name>_bucket``, ``_sum`` and ``_count``), with the
``deployment``, ``replica`` and ``application`` tags Serve adds (``ray.serve.metrics``).

Tag values have bounded cardinality by construction: route templates (``/api/v2/images/jobs/{job_id}``), never raw
paths; status codes; kinds, stages and backends that the code or the config names. Prompts, keys and tenant ids
are never tag values. Values that could be anything (an HTTP method, a priority) are folded into a small set here.

Hierarchy::

    Metrics (Protocol)   the methods callers use
    _Base                those methods over three primitives (inc, observe, set) keyed by METRICS
    ├── NullMetrics      records nothing (outside Ray)
    ├── RayMetrics       ray.serve.metrics Counter / Histogram / Gauge, created in its constructor
    └── RecordingMetrics keeps every sample, checks tag keys against METRICS (tests)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "CACHE_OUTCOMES",
    "HTTP_METHODS",
    "JOB_STATUSES",
    "METRICS",
    "STAGES",
    "WEBHOOK_OUTCOMES",
    "MetricSpec",
    "Metrics",
    "NullMetrics",
    "RayMetrics",
    "RecordingMetrics",
    "Sample",
    "metrics",
    "priority_class",
    "timed_stage",
    "use_metrics",
]

MetricKind = Literal["counter", "histogram", "gauge"]

_LATENCY_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_JOB_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric as Ray is told about it.

    Attributes:
        kind: ``counter``, ``histogram`` or ``gauge``.
        description: The Prometheus ``HELP`` text.
        tag_keys: Every tag it is recorded with (all of them, every time).
        boundaries: Histogram bucket upper bounds (Ray wants them positive and increasing).
    """

    kind: MetricKind
    description: str
    tag_keys: tuple[str, ...]
    boundaries: tuple[float, ...] = ()


METRICS: Mapping[str, MetricSpec] = {
    "limner_http_requests_total": MetricSpec(
        "counter", "HTTP answers by route template, method and status code.", ("route", "method", "status")
    ),
    "limner_http_request_seconds": MetricSpec(
        "histogram",
        "Seconds from a request's arrival to its whole answer (a streamed answer: to its start).",
        ("route", "method"),
        _LATENCY_S,
    ),
    "limner_jobs_finished_total": MetricSpec(
        "counter",
        "Job attempts ended, by kind, outcome (succeeded, failed, retried, cancelled) and priority class.",
        ("kind", "status", "priority"),
    ),
    "limner_job_queue_wait_seconds": MetricSpec(
        "histogram", "Seconds a job waited in the queue before a runner claimed it.", ("kind", "priority"), _JOB_S
    ),
    "limner_job_run_seconds": MetricSpec(
        "histogram", "Seconds a job attempt ran, from claim to outcome.", ("kind", "status"), _JOB_S
    ),
    "limner_queue_depth": MetricSpec(
        "gauge", "Jobs in the database by status, as a dispatcher last counted them.", ("status",)
    ),
    "limner_stage_seconds": MetricSpec(
        "histogram",
        "Seconds per run step of a job (compose, generate, enhance, overlay, store).",
        ("stage",),
        _LATENCY_S,
    ),
    "limner_cache_lookups_total": MetricSpec(
        "counter",
        "Cache lookups by cache (result, asset) and result (hit, miss, coalesced).",
        ("cache", "result"),
    ),
    "limner_remote_cost_usd_total": MetricSpec(
        "counter", "What the paid APIs charged, in US dollars, by backend.", ("backend",)
    ),
    "limner_webhook_deliveries_total": MetricSpec(
        "counter", "Webhook tries by outcome (delivered, retry, failed).", ("outcome",)
    ),
    "limner_rate_limited_total": MetricSpec(
        "counter", "Requests refused by the rate limiter, by route group.", ("group",)
    ),
    "limner_auth_failures_total": MetricSpec("counter", "Requests refused by authentication, by reason.", ("reason",)),
}
"""Every metric of this module, by the name it is registered under (Ray exports it as ``ray_<name>``)."""

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods recorded as they are; any other is recorded as ``OTHER``."""
STAGES = frozenset({"compose", "generate", "enhance", "overlay", "store"})
"""Stage names recorded as they are; any other is recorded as ``other``."""
JOB_STATUSES = frozenset({"succeeded", "failed", "retried", "cancelled"})
"""Job outcomes recorded as they are; any other is recorded as ``other``."""
CACHE_OUTCOMES = frozenset({"hit", "miss", "coalesced"})
"""Cache lookup results recorded as they are; any other is recorded as ``other``."""
WEBHOOK_OUTCOMES = frozenset({"delivered", "retry", "failed"})
"""Webhook outcomes recorded as they are; any other is recorded as ``other``."""

_MAX_TAG = 64  # a tag value longer than this is cut: a bug must not explode a series name


def priority_class(priority: int) -> str:
    """A job priority as a tag value: ``low`` (< 0), ``normal`` (0) or ``high`` (> 0); the integer itself is
    unbounded, so it is never a tag."""
    return "high" if priority > 0 else "low" if priority < 0 else "normal"


def _tag(value: object) -> str:
    text = str(value)
    return text if len(text) <= _MAX_TAG else text[:_MAX_TAG]


def _known(value: str, allowed: frozenset[str], other: str = "other") -> str:
    return value if value in allowed else other


@runtime_checkable
class Metrics(Protocol):
    """What limner records. Every method is cheap (a dict of tags) and never raises."""

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP answer.

        Args:
            route: The route template (``/api/v2/images/jobs/{job_id}``), or ``unmatched``.
            method: The request method.
            status: The status code sent.
            seconds: From arrival to the answer's end (a streamed answer: its start).
        """
        ...

    def job_claimed(self, kind: str, priority: int, queue_wait_s: float) -> None:
        """A runner claimed a job of ``kind`` after it waited ``queue_wait_s`` seconds in the queue."""
        ...

    def job_finished(self, kind: str, status: str, priority: int, run_s: float | None = None) -> None:
        """A job attempt ended: ``status`` one of :data:`JOB_STATUSES`; ``run_s`` from claim to outcome."""
        ...

    def queue_depth(self, status: str, depth: int) -> None:
        """Jobs with ``status`` in the database now."""
        ...

    def stage_seconds(self, stage: str, seconds: float) -> None:
        """One run step (one of :data:`STAGES`) took ``seconds``."""
        ...

    def cache_lookup(self, cache: str, outcome: str, count: int = 1) -> None:
        """``count`` lookups of ``cache`` (``result`` or ``asset``) with ``outcome`` (:data:`CACHE_OUTCOMES`)."""
        ...

    def remote_cost(self, backend: str, usd: float) -> None:
        """A paid API charged ``usd`` dollars."""
        ...

    def webhook_delivery(self, outcome: str) -> None:
        """One webhook try ended: ``delivered``, ``retry`` (tried again later) or ``failed`` (given up)."""
        ...

    def rate_limited(self, group: str) -> None:
        """The rate limiter refused a request of route group ``group``."""
        ...

    def auth_failure(self, reason: str) -> None:
        """Authentication refused a request, for ``reason`` (``missing``, ``invalid``, ``forbidden``, ...)."""
        ...


class _Base:
    """:class:`Metrics` over three primitives keyed by :data:`METRICS` names; subclasses implement them."""

    def _inc(self, name: str, tags: dict[str, str], value: float = 1.0) -> None:
        raise NotImplementedError

    def _observe(self, name: str, tags: dict[str, str], value: float) -> None:
        raise NotImplementedError

    def _set(self, name: str, tags: dict[str, str], value: float) -> None:
        raise NotImplementedError

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """See :meth:`Metrics.http_request`."""
        route, method = _tag(route), _known(method.upper(), HTTP_METHODS, "OTHER")
        self._inc("limner_http_requests_total", {"route": route, "method": method, "status": str(int(status))})
        self._observe("limner_http_request_seconds", {"route": route, "method": method}, max(0.0, seconds))

    def job_claimed(self, kind: str, priority: int, queue_wait_s: float) -> None:
        """See :meth:`Metrics.job_claimed`."""
        tags = {"kind": _tag(kind), "priority": priority_class(priority)}
        self._observe("limner_job_queue_wait_seconds", tags, max(0.0, queue_wait_s))

    def job_finished(self, kind: str, status: str, priority: int, run_s: float | None = None) -> None:
        """See :meth:`Metrics.job_finished`."""
        kind, status = _tag(kind), _known(status, JOB_STATUSES)
        self._inc("limner_jobs_finished_total", {"kind": kind, "status": status, "priority": priority_class(priority)})
        if run_s is not None:
            self._observe("limner_job_run_seconds", {"kind": kind, "status": status}, max(0.0, run_s))

    def queue_depth(self, status: str, depth: int) -> None:
        """See :meth:`Metrics.queue_depth`."""
        self._set("limner_queue_depth", {"status": _tag(status)}, float(depth))

    def stage_seconds(self, stage: str, seconds: float) -> None:
        """See :meth:`Metrics.stage_seconds`."""
        self._observe("limner_stage_seconds", {"stage": _known(stage, STAGES)}, max(0.0, seconds))

    def cache_lookup(self, cache: str, outcome: str, count: int = 1) -> None:
        """See :meth:`Metrics.cache_lookup`."""
        if count > 0:
            tags = {"cache": _tag(cache), "result": _known(outcome, CACHE_OUTCOMES)}
            self._inc("limner_cache_lookups_total", tags, float(count))

    def remote_cost(self, backend: str, usd: float) -> None:
        """See :meth:`Metrics.remote_cost`. A zero or negative cost records nothing (Ray counters only grow)."""
        if usd > 0:
            self._inc("limner_remote_cost_usd_total", {"backend": _tag(backend)}, float(usd))

    def webhook_delivery(self, outcome: str) -> None:
        """See :meth:`Metrics.webhook_delivery`."""
        self._inc("limner_webhook_deliveries_total", {"outcome": _known(outcome, WEBHOOK_OUTCOMES)})

    def rate_limited(self, group: str) -> None:
        """See :meth:`Metrics.rate_limited`."""
        self._inc("limner_rate_limited_total", {"group": _tag(group)})

    def auth_failure(self, reason: str) -> None:
        """See :meth:`Metrics.auth_failure`."""
        self._inc("limner_auth_failures_total", {"reason": _tag(reason)})


class NullMetrics(_Base):
    """Records nothing: the metrics of a process outside Ray (unit tests, the CLI)."""

    def _inc(self, name: str, tags: dict[str, str], value: float = 1.0) -> None:
        pass

    def _observe(self, name: str, tags: dict[str, str], value: float) -> None:
        pass

    def _set(self, name: str, tags: dict[str, str], value: float) -> None:
        pass


class RayMetrics(_Base):
    """Records through ``ray.serve.metrics``, which Ray's metrics agent exports to Prometheus.

    Creates every metric of :data:`METRICS` in its constructor, so make it inside the Ray worker that records
    (:func:`metrics` does, on first use). A metric that fails to record logs nothing and raises nothing: metrics
    never fail a request.
    """

    def __init__(self) -> None:
        from ray.serve import metrics as serve_metrics

        made: dict[str, Any] = {}
        for name, spec in METRICS.items():
            if spec.kind == "counter":
                made[name] = serve_metrics.Counter(name, description=spec.description, tag_keys=spec.tag_keys)
            elif spec.kind == "histogram":
                made[name] = serve_metrics.Histogram(
                    name, description=spec.description, boundaries=list(spec.boundaries), tag_keys=spec.tag_keys
                )
            else:
                made[name] = serve_metrics.Gauge(name, description=spec.description, tag_keys=spec.tag_keys)
        self._metrics = made

    def _inc(self, name: str, tags: dict[str, str], value: float = 1.0) -> None:
        with contextlib.suppress(Exception):
            self._metrics[name].inc(value, tags=tags)

    def _observe(self, name: str, tags: dict[str, str], value: float) -> None:
        with contextlib.suppress(Exception):
            self._metrics[name].observe(value, tags=tags)

    def _set(self, name: str, tags: dict[str, str], value: float) -> None:
        with contextlib.suppress(Exception):
            self._metrics[name].set(value, tags=tags)


@dataclass(frozen=True, slots=True)
class Sample:
    """One recorded value.

    Attributes:
        name: The metric's name in :data:`METRICS`.
        kind: ``inc``, ``observe`` or ``set``.
        tags: Its tags.
        value: The increment, the observation or the gauge's value.
    """

    name: str
    kind: str
    tags: Mapping[str, str]
    value: float


class RecordingMetrics(_Base):
    """Keeps every sample, for tests; refuses a sample whose tag keys differ from :data:`METRICS` (the mistake
    Ray would reject at run time)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def _add(self, name: str, kind: str, tags: dict[str, str], value: float) -> None:
        spec = METRICS[name]
        if set(tags) != set(spec.tag_keys):
            raise ValueError(f"{name}: tags {sorted(tags)} are not its tag keys {sorted(spec.tag_keys)}")
        if kind == "inc" and value <= 0:
            raise ValueError(f"{name}: a counter only grows, got {value}")
        self.samples.append(Sample(name, kind, dict(tags), value))

    def _inc(self, name: str, tags: dict[str, str], value: float = 1.0) -> None:
        self._add(name, "inc", tags, value)

    def _observe(self, name: str, tags: dict[str, str], value: float) -> None:
        self._add(name, "observe", tags, value)

    def _set(self, name: str, tags: dict[str, str], value: float) -> None:
        self._add(name, "set", tags, value)

    def matching(self, name: str, **tags: str) -> list[Sample]:
        """The samples of ``name`` whose tags include ``tags``."""
        return [s for s in self.samples if s.name == name and all(s.tags.get(k) == v for k, v in tags.items())]

    def count(self, name: str, **tags: str) -> float:
        """The sum of a counter's increments whose tags include ``tags``."""
        return sum(s.value for s in self.matching(name, **tags) if s.kind == "inc")

    def observed(self, name: str, **tags: str) -> list[float]:
        """A histogram's observations whose tags include ``tags``."""
        return [s.value for s in self.matching(name, **tags) if s.kind == "observe"]

    def gauge(self, name: str, **tags: str) -> float | None:
        """A gauge's last value with tags including ``tags`` (None if never set)."""
        values = [s.value for s in self.matching(name, **tags) if s.kind == "set"]
        return values[-1] if values else None


class _Current:
    """The process's metrics, made on first use (a holder, so the module keeps no rebinding global)."""

    instance: Metrics | None = None


def _in_ray_worker() -> bool:
    ray = sys.modules.get("ray")  # a Ray worker has imported ray long before any limner code runs
    if ray is None:
        return False
    try:
        return bool(ray.is_initialized())
    except Exception:
        return False


def metrics() -> Metrics:
    """The process's :class:`Metrics`: made on first call, :class:`RayMetrics` inside a Ray worker (where
    ``ray.is_initialized()``), else :class:`NullMetrics`; whatever :func:`use_metrics` installed while it is."""
    current = _Current.instance
    if current is None:
        current = RayMetrics() if _in_ray_worker() else NullMetrics()
        _Current.instance = current
    return current


@contextlib.contextmanager
def use_metrics(instance: Metrics) -> Iterator[Metrics]:
    """Makes ``instance`` the process's metrics inside the block (tests: ``with use_metrics(RecordingMetrics())``),
    then restores what was there (or nothing: the next :func:`metrics` call makes one again)."""
    previous = _Current.instance
    _Current.instance = instance
    try:
        yield instance
    finally:
        _Current.instance = previous


@contextlib.contextmanager
def timed_stage(stage: str) -> Iterator[None]:
    """Records the block's seconds as ``stage``'s (:meth:`Metrics.stage_seconds`), whether it returns or raises."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics().stage_seconds(stage, time.perf_counter() - started)
