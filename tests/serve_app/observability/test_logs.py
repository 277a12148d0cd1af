"""JSON log lines: they parse, carry the context variables, write exceptions as strings, and redact prompts and
keys; configure_logging installs one handler on the limner tree and leaves Ray Serve's alone."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from serve_app.observability.logs import (
    JOB_ID,
    REDACTED,
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


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A limner logger whose JSON lines land in a buffer; the tree is restored afterwards."""
    root = logging.getLogger("ray.serve.limner")
    level = root.level
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, log_prompts=False)
    root.setLevel(logging.DEBUG)
    try:
        yield logging.getLogger("ray.serve.limner.test"), stream
    finally:
        configure_logging(json=False)
        root.setLevel(level)


def _parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_basic_fields(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    logger.info("job %s done in %.1fs", "j1", 2.5, extra={"attempt": 2, "backend": "local"})
    logger.warning("second line")
    first, second = _parsed(stream)
    assert first["level"] == "INFO" and first["logger"] == "ray.serve.limner.test"
    assert first["message"] == "job j1 done in 2.5s"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert (first["attempt"], first["backend"]) == (2, "local")
    assert second["level"] == "WARNING"
    assert not {"request_id", "job_id", "tenant", "route"} & set(first)  # none set: none written


def test_lines_carry_the_context_variables(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    job = uuid.uuid4()
    with log_context(request_id="r-1", job_id=job, tenant="acme", route=lambda: "/api/v2/images/jobs/{job_id}"):
        assert current_context()["job_id"] == str(job)
        logger.info("inside")
    logger.info("outside")
    inside, outside = _parsed(stream)
    assert inside["request_id"] == "r-1" and inside["job_id"] == str(job) and inside["tenant"] == "acme"
    assert inside["route"] == "/api/v2/images/jobs/{job_id}"
    assert "request_id" not in outside and JOB_ID.get() is None


def test_set_and_reset_context() -> None:
    tokens = set_context(job_id="j9")
    assert current_context() == {"job_id": "j9"}
    reset_context(tokens)
    assert current_context() == {}


def test_an_exception_is_a_string_field(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    try:
        raise ValueError("bad seed")
    except ValueError:
        logger.exception("render failed")
    [line] = _parsed(stream)
    assert line["level"] == "ERROR" and line["message"] == "render failed"
    assert isinstance(line["exception"], str) and "ValueError: bad seed" in line["exception"]


def test_prompts_and_keys_are_redacted(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    logger.info(
        "accepted",
        extra={
            "prompt": "a dragon",
            "negative_prompt": "blurry",
            "api_key": "sk-123",
            "authorization": "Bearer x",
            "body": {"prompt": "nested", "width": 64, "layers": [{"secret": "s"}]},
            "password": "hunter2",
        },
    )
    [line] = _parsed(stream)
    for field in ("prompt", "negative_prompt", "api_key", "authorization", "password"):
        assert line[field] == REDACTED, field
    assert line["body"] == {"prompt": REDACTED, "width": 64, "layers": [{"secret": REDACTED}]}
    text = stream.getvalue()
    assert "a dragon" not in text and "sk-123" not in text and "hunter2" not in text


def test_log_prompts_lets_prompts_through_but_never_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMNER_LOG_PROMPTS", "1")
    stream = io.StringIO()
    handler = configure_logging(json=True, stream=stream)  # reads the variable now
    logger = logging.getLogger("ray.serve.limner.prompts")
    logger.setLevel(logging.INFO)
    try:
        logger.info("accepted", extra={"prompt": "a dragon", "key": "k-1", "secret": "s"})
    finally:
        configure_logging(json=False)
        logger.setLevel(logging.NOTSET)
    assert handler is not None
    [line] = _parsed(stream)
    assert line["prompt"] == "a dragon" and line["key"] == REDACTED and line["secret"] == REDACTED


def test_redact_helper() -> None:
    assert redact("Prompt", "x") == REDACTED
    assert redact("prompt", "x", log_prompts=True) == "x"
    assert redact("api_key", "x", log_prompts=True) == REDACTED
    assert redact("width", 64) == 64


def test_configure_logging_is_idempotent_and_reversible() -> None:
    root = logging.getLogger("ray.serve.limner")
    before = list(root.handlers)
    ray_serve = list(logging.getLogger("ray.serve").handlers)
    first = configure_logging(json=True, stream=io.StringIO())
    second = configure_logging(json=True, stream=io.StringIO())
    try:
        assert first is not None and second is not None
        assert first not in root.handlers and root.handlers == [*before, second]
    finally:
        assert configure_logging(json=False) is None
    assert root.handlers == before
    assert logging.getLogger("ray.serve").handlers == ray_serve  # Ray Serve's own are never touched


def test_ray_serves_stderr_handler_skips_what_was_written_as_json(lines: tuple[logging.Logger, io.StringIO]) -> None:
    from ray.serve._private.logging_utils import log_to_stderr_filter

    logger, _ = lines
    seen: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    parent = logging.getLogger("ray.serve")
    catch = Catch()
    parent.addHandler(catch)
    try:
        logger.info("once on stderr")
    finally:
        parent.removeHandler(catch)
    [record] = seen  # it still reaches Ray Serve's handlers (its replica log file)
    assert log_to_stderr_filter(record) is False  # but Serve's stderr handler drops it: no line twice


def test_the_filter_alone_puts_context_and_redaction_on_records_for_other_formatters() -> None:
    record = logging.LogRecord("ray.serve.limner.x", logging.INFO, __file__, 1, "m", None, None)
    record.prompt = "a dragon"
    with log_context(request_id="r-2"):
        assert ContextFilter(log_prompts=False).filter(record)
    assert record.request_id == "r-2" and record.prompt == REDACTED
    assert not hasattr(record, "log_to_stderr")


def test_the_formatter_reads_the_context_without_the_filter() -> None:
    record = logging.LogRecord("ray.serve.limner.x", logging.INFO, __file__, 1, "m", None, None)
    with log_context(tenant="acme"):
        line = json.loads(JsonFormatter(log_prompts=False).format(record))
    assert line["tenant"] == "acme"


@pytest.mark.parametrize(("value", "installed"), [("json", True), ("JSON", True), ("text", False), ("xml", False)])
def test_configure_from_the_environment(value: str, installed: bool) -> None:
    try:
        handler = configure_logging_from_env({"LIMNER_LOG_FORMAT": value})
        assert (handler is not None) is installed
    finally:
        configure_logging(json=False)
    assert configure_logging_from_env({}) is None  # the default: Ray's text format
