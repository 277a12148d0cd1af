"""Structured JSON logs: one object per line, with the request, job, tenant and route they were written under.

The context lives in four :class:`~contextvars.ContextVar` objects, :data:`REQUEST_ID`, :data:`JOB_ID`,
:data:`TENANT` and :data:`ROUTE`, set by the HTTP middleware (:mod:`serve_app.api.metrics`), the dispatcher and the
auth layer through :func:`log_context` or :func:`set_context`. :class:`ContextFilter` copies them onto each record
and redacts sensitive fields; :class:`JsonFormatter` writes the line::

    {"ts": "2030-01-01T12:00:00.123Z", "level": "INFO", "logger": "ray.serve.limner.jobs", "message": "...",
     "request_id": "3f2a...", "job_id": "...", "route": "/api/v2/images/jobs/{job_id}", "attempt": 2}

Redaction: a field (a logging ``extra``, or a key of a dict passed as one) named ``prompt``, ``negative_prompt``,
``api_key``, ``authorization``, ``key``, ``secret`` or ``password`` is written as ``"[redacted]"``. With
``LIMNER_LOG_PROMPTS=1`` prompts are written as they are; keys and secrets never are. Log messages themselves are
not parsed: code must not format a prompt or a key into a message.

:func:`configure_logging` is called by the ingress at replica start when ``LIMNER_LOG_FORMAT=json``. It adds one
handler to the ``ray.serve.limner`` logger and leaves Ray Serve's handlers on ``ray.serve`` as they are: the line
goes to stderr as JSON, Ray's own stderr handler skips it (its ``log_to_stderr`` filter), and Ray's replica log
file still gets it, in the encoding of Serve's ``logging_config``. The default stays Ray's text format.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar, Token
from typing import IO, Any

from serve_app.auth.tenant import CURRENT_TENANT

__all__ = [
    "CONTEXT_FIELDS",
    "JOB_ID",
    "PROMPT_FIELDS",
    "REDACTED",
    "REQUEST_ID",
    "ROUTE",
    "SECRET_FIELDS",
    "TENANT",
    "ContextFilter",
    "JsonFormatter",
    "configure_logging",
    "configure_logging_from_env",
    "current_context",
    "log_context",
    "log_prompts_enabled",
    "redact",
    "reset_context",
    "set_context",
]

LOGGER_NAME = "ray.serve.limner"

REQUEST_ID: ContextVar[str | None] = ContextVar("limner_request_id", default=None)
"""The HTTP request's id (``X-Request-ID``), set by the request middleware."""
JOB_ID: ContextVar[str | None] = ContextVar("limner_job_id", default=None)
"""The job being run or submitted."""
TENANT: ContextVar[str | None] = CURRENT_TENANT
"""Who the request or job is for: the auth layer's tenant scope itself (serve_app/auth/tenant.py), so every line
written under a scope names it. Set it with ``tenant_scope``; never a metric tag."""
ROUTE: ContextVar[str | Callable[[], str | None] | None] = ContextVar("limner_route", default=None)
"""The route template; or a function returning it, read when a line is written (the middleware sets one before
routing, which finds the template later)."""

CONTEXT_FIELDS = ("request_id", "job_id", "tenant", "route")
"""The context fields each line carries when they are set, in this order."""
PROMPT_FIELDS = frozenset({"prompt", "negative_prompt"})
"""Written as they are only with ``LIMNER_LOG_PROMPTS=1``."""
SECRET_FIELDS = frozenset({"api_key", "authorization", "key", "secret", "password"})
"""Never written."""
REDACTED = "[redacted]"

_SENSITIVE = PROMPT_FIELDS | SECRET_FIELDS
_VARS: dict[str, ContextVar[Any]] = {"request_id": REQUEST_ID, "job_id": JOB_ID, "tenant": TENANT, "route": ROUTE}
_MARK = "_limner_handler"  # set on the handler configure_logging installs, so a second call replaces it
_MAX_DEPTH = 4  # nested extras deeper than this are written as their str()

# What a LogRecord carries by itself: everything else on it is an ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
# Set by Ray's filters or by ours for Ray's handlers: not the caller's fields.
_NOT_EXTRA = frozenset({"log_to_stderr", "skip_context_filter", "serve_access_log"}) | frozenset(CONTEXT_FIELDS)


def log_prompts_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``LIMNER_LOG_PROMPTS=1`` lets prompts into the logs (read when a filter or formatter is made)."""
    return (os.environ if environ is None else environ).get("LIMNER_LOG_PROMPTS", "") == "1"


def set_context(
    *,
    request_id: str | None = None,
    job_id: object | None = None,
    tenant: str | None = None,
    route: str | Callable[[], str | None] | None = None,
) -> list[tuple[ContextVar[Any], Token[Any]]]:
    """Sets the given context fields (those left None are untouched); returns what :func:`reset_context` undoes.

    Args:
        request_id: The HTTP request's id.
        job_id: The job's id (a UUID is written as its string).
        tenant: The tenant (logs only).
        route: The route template, or a function returning it.
    """
    tokens: list[tuple[ContextVar[Any], Token[Any]]] = []
    if request_id is not None:
        tokens.append((REQUEST_ID, REQUEST_ID.set(request_id)))
    if job_id is not None:
        tokens.append((JOB_ID, JOB_ID.set(str(job_id))))
    if tenant is not None:
        tokens.append((TENANT, TENANT.set(tenant)))
    if route is not None:
        tokens.append((ROUTE, ROUTE.set(route)))
    return tokens


def reset_context(tokens: list[tuple[ContextVar[Any], Token[Any]]]) -> None:
    """Undoes a :func:`set_context` (in the same context it was called in)."""
    for var, token in reversed(tokens):
        var.reset(token)


@contextlib.contextmanager
def log_context(
    *,
    request_id: str | None = None,
    job_id: object | None = None,
    tenant: str | None = None,
    route: str | Callable[[], str | None] | None = None,
) -> Iterator[None]:
    """:func:`set_context` for the block: ``with log_context(job_id=job.id): ...``."""
    tokens = set_context(request_id=request_id, job_id=job_id, tenant=tenant, route=route)
    try:
        yield
    finally:
        reset_context(tokens)


def current_context() -> dict[str, str]:
    """The context fields set now (a route function is called)."""
    out: dict[str, str] = {}
    for name, var in _VARS.items():
        value = var.get()
        if callable(value):
            value = value()
        if value is not None:
            out[name] = str(value)
    return out


def redact(name: str, value: Any, *, log_prompts: bool = False) -> Any:
    """``value`` as it may be logged under field ``name``: ``"[redacted]"`` for a secret (always) or a prompt
    (unless ``log_prompts``); dicts and lists are redacted key by key."""
    return _redact(name, value, log_prompts, 0)


def _redact(name: str, value: Any, log_prompts: bool, depth: int) -> Any:
    lowered = name.lower()
    if lowered in SECRET_FIELDS or (lowered in PROMPT_FIELDS and not log_prompts):
        return REDACTED
    if isinstance(value, Mapping):
        if depth >= _MAX_DEPTH:
            return str(value)
        return {str(k): _redact(str(k), v, log_prompts, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if depth >= _MAX_DEPTH:
            return str(value)
        return [_redact("", v, log_prompts, depth + 1) for v in value]
    return value


class ContextFilter(logging.Filter):
    """Copies the context fields onto each record and redacts its sensitive extras; filters nothing out.

    On a handler it sees every record the handler gets, a child logger's included (a filter on a logger only
    sees records made by that very logger). A field the caller passed as an ``extra`` wins over the context.

    Args:
        log_prompts: Let prompts through (default: ``LIMNER_LOG_PROMPTS=1``, read now).
        keep_ray_stderr: False makes Ray Serve's stderr handler skip the record (the record was written as JSON
            already); Ray's log file still gets it.
    """

    def __init__(self, *, log_prompts: bool | None = None, keep_ray_stderr: bool = True) -> None:
        super().__init__()
        self.log_prompts = log_prompts_enabled() if log_prompts is None else log_prompts
        self._keep_ray_stderr = keep_ray_stderr

    def filter(self, record: logging.LogRecord) -> bool:
        attrs = record.__dict__
        for name, var in _VARS.items():
            if attrs.get(name) is None:
                value = var.get()
                if callable(value):
                    value = value()
                if value is not None:
                    attrs[name] = str(value)
        for name in _SENSITIVE:
            if name in attrs:
                attrs[name] = redact(name, attrs[name], log_prompts=self.log_prompts)
        if not self._keep_ray_stderr:
            attrs["log_to_stderr"] = False
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``, the
    context fields that are set, the caller's extras (redacted), and ``exception`` / ``stack`` as strings.

    It reads the context from the record (:class:`ContextFilter` put it there) and else from the context
    variables, so it works without the filter too, as long as it formats in the logging call (a plain handler).

    Args:
        log_prompts: Let prompts through (default: ``LIMNER_LOG_PROMPTS=1``, read now).
    """

    def __init__(self, *, log_prompts: bool | None = None) -> None:
        super().__init__()
        self.log_prompts = log_prompts_enabled() if log_prompts is None else log_prompts

    def format(self, record: logging.LogRecord) -> str:
        attrs = record.__dict__
        created = record.created
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _VARS.items():
            value = attrs.get(name)
            if value is None:
                value = var.get()
                if callable(value):
                    value = value()
            if value is not None:
                out[name] = str(value)
        for name, value in attrs.items():
            if name in _STANDARD or name in _NOT_EXTRA or name.startswith("_") or name in out:
                continue
            out[name] = _redact(name, value, self.log_prompts, 0)
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False, separators=(",", ":"))


def configure_logging(
    json: bool,
    *,
    logger_name: str = LOGGER_NAME,
    stream: IO[str] | None = None,
    log_prompts: bool | None = None,
) -> logging.Handler | None:
    """Installs (``json`` True) or removes (False) limner's JSON handler on the ``logger_name`` tree.

    Idempotent: a second call replaces the handler of the first. Ray Serve's handlers on ``ray.serve`` are left
    as they are; records that our handler wrote to ``stream`` are marked so Serve's stderr handler skips them
    (no line twice on stderr), and still reach Serve's replica log file.

    Args:
        json: JSON lines on ``stream``; False restores Ray's text format alone.
        logger_name: The logger tree (``ray.serve.limner``: every limner logger is under it).
        stream: Where the lines go (default: ``sys.stderr`` as it is now).
        log_prompts: Let prompts through (default: ``LIMNER_LOG_PROMPTS=1``).

    Returns:
        The installed handler, or None when ``json`` is False.
    """
    logger = logging.getLogger(logger_name)
    for old in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(old)
        old.close()
    if not json:
        return None
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _MARK, True)
    handler.setFormatter(JsonFormatter(log_prompts=log_prompts))
    handler.addFilter(ContextFilter(log_prompts=log_prompts, keep_ray_stderr=False))
    logger.addHandler(handler)
    return handler


def configure_logging_from_env(environ: Mapping[str, str] | None = None) -> logging.Handler | None:
    """:func:`configure_logging` as ``LIMNER_LOG_FORMAT`` says: ``json``, or ``text`` (the default: Ray's format).

    Called by a deployment's constructor at replica start (never at import). An unknown value keeps the text
    format and says so in the log.
    """
    value = (os.environ if environ is None else environ).get("LIMNER_LOG_FORMAT", "text").strip().lower()
    if value not in ("text", "json"):
        logging.getLogger(LOGGER_NAME).warning("LIMNER_LOG_FORMAT=%r is neither 'text' nor 'json': text it is", value)
    return configure_logging(json=value == "json")
