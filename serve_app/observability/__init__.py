"""Observability: Prometheus metrics through Ray's metrics export, and structured JSON logs.

- :mod:`.metrics`: :func:`~serve_app.observability.metrics.metrics` (the process's :class:`Metrics`; import it
  from the module: a package attribute of that name would hide the module), :class:`RecordingMetrics` and
  :func:`use_metrics` for tests, :data:`METRICS` (every metric, its tag keys and buckets).
- :mod:`.logs`: the context variables each log line carries, :class:`JsonFormatter`, :func:`configure_logging`.

The HTTP side (route template, status, seconds, request id) is the ASGI middleware in
:mod:`serve_app.api.metrics`. docs/OBSERVABILITY.md lists every series and how to scrape it.
"""

from serve_app.observability.logs import (
    JOB_ID,
    REDACTED,
    REQUEST_ID,
    ROUTE,
    TENANT,
    ContextFilter,
    JsonFormatter,
    configure_logging,
    configure_logging_from_env,
    current_context,
    log_context,
    redact,
    reset_context,
    set_context,
)
from serve_app.observability.metrics import (
    METRICS,
    Metrics,
    MetricSpec,
    NullMetrics,
    RayMetrics,
    RecordingMetrics,
    Sample,
    priority_class,
    timed_stage,
    use_metrics,
)

__all__ = [
    "JOB_ID",
    "METRICS",
    "REDACTED",
    "REQUEST_ID",
    "ROUTE",
    "TENANT",
    "ContextFilter",
    "JsonFormatter",
    "MetricSpec",
    "Metrics",
    "NullMetrics",
    "RayMetrics",
    "RecordingMetrics",
    "Sample",
    "configure_logging",
    "configure_logging_from_env",
    "current_context",
    "log_context",
    "priority_class",
    "redact",
    "reset_context",
    "set_context",
    "timed_stage",
    "use_metrics",
]
