"""The one error table (serve_app/errors.py): every domain exception → status, error type and param."""

from __future__ import annotations

import os
import pickle
import traceback
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipelines.errors import Cancelled, InputError
from pipelines.sdxl import ModelConfigError
from serve_app import errors
from serve_app.errors import (
    INTERNAL_FAILURE,
    BackendFailed,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayTimeout,
    GenerationFailed,
    InvalidRequest,
    MethodNotAllowed,
    ModerationRefused,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    PaymentRequired,
    RateLimited,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
    describe_failure,
    from_exception,
    install_error_handlers,
    is_transient,
)
from serve_app.images import ImageNotFound
from serve_app.jobs.base import IdempotencyConflict, InvalidCursor, JobNotFound, PermanentJobError, UnknownKind
from serve_app.store.base import AssetNotFound, InvalidAssetKey, UnsupportedFormat

SHA = "ab" * 32
JOB_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
SECRET = "db password is hunter2"


def _ray_task_error(cause: BaseException) -> BaseException:
    """What ``ray.get`` raises for a remote task that raised ``cause``: RayTaskError built by the worker, then
    ``as_instanceof_cause()`` (a class deriving from both RayTaskError and the cause's class)."""
    from ray.exceptions import RayTaskError

    try:
        raise cause
    except BaseException as exc:
        rte = RayTaskError("Generator.generate", traceback.format_exc(), exc, pid=os.getpid(), ip="127.0.0.1")
    return rte.as_instanceof_cause()


# -- the ServiceError hierarchy ---------------------------------------------------------------------------

HIERARCHY = [
    (InvalidRequest, 422, "invalid_request"),
    (ModerationRefused, 422, "moderation"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (BadRequest, 400, "invalid_request"),
    (MethodNotAllowed, 405, "method_not_allowed"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (UnsupportedMediaType, 415, "unsupported_media_type"),
    (Conflict, 409, "conflict"),
    (RateLimited, 429, "rate_limited"),
    (PaymentRequired, 402, "backend_budget"),
    (BackendFailed, 502, "backend_error"),
    (Overloaded, 503, "overloaded"),
    (NotReady, 503, "not_ready"),
    (GenerationFailed, 500, "generation_failed"),
    (GatewayTimeout, 504, "timeout"),
]


def test_the_table_in_this_test_names_every_service_error_subclass() -> None:
    def subclasses(cls: type) -> set[type]:
        direct = set(cls.__subclasses__())
        return direct.union(*(subclasses(c) for c in direct))

    defined_here = {c for c in subclasses(ServiceError) if c.__module__ == errors.__name__}
    assert defined_here == {cls for cls, _, _ in HIERARCHY}


@pytest.mark.parametrize(("cls", "status", "error_type"), HIERARCHY, ids=[c.__name__ for c, _, _ in HIERARCHY])
def test_each_service_error_has_its_status_and_type_and_pickles(
    cls: type[ServiceError], status: int, error_type: str
) -> None:
    err = cls("something went wrong", param="field", headers={"Retry-After": "7"})
    assert (err.status_code, err.error_type) == (status, error_type)
    assert str(err) == "something went wrong"

    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert back.message == "something went wrong"
    assert back.param == "field"
    assert back.headers == {"Retry-After": "7"}
    assert (back.status_code, back.error_type) == (status, error_type)


def test_a_service_error_passes_through_from_exception_unchanged() -> None:
    err = RateLimited("slow down", headers={"Retry-After": "30"})
    assert from_exception(err) is err


def test_headers_default_to_empty() -> None:
    assert NotFound("gone").headers == {}
    assert NotFound("gone").param is None


# -- domain exceptions → the table ------------------------------------------------------------------------

DOMAIN = [
    pytest.param(
        InputError("width", 100, "a multiple of 8 in [64, 2048]"), 422, "invalid_request", "width", id="InputError"
    ),
    pytest.param(
        InvalidAssetKey("sha256", "XYZ", "64 lowercase hex digits"),
        422,
        "invalid_request",
        "sha256",
        id="InvalidAssetKey",
    ),
    pytest.param(
        InvalidAssetKey("ext", "p/ng", "short alphanumeric"), 422, "invalid_request", "ext", id="InvalidAssetKey-ext"
    ),
    pytest.param(UnsupportedFormat("tiff"), 422, "invalid_request", "ext", id="UnsupportedFormat"),
    pytest.param(InvalidCursor("not-a-cursor"), 422, "invalid_request", "cursor", id="InvalidCursor"),
    pytest.param(JobNotFound(JOB_ID), 404, "not_found", "job_id", id="JobNotFound"),
    pytest.param(ImageNotFound(JOB_ID), 404, "not_found", "image_id", id="ImageNotFound"),
    pytest.param(AssetNotFound(SHA, "png"), 404, "not_found", "sha256", id="AssetNotFound"),
    pytest.param(IdempotencyConflict("key-1", JOB_ID), 409, "conflict", "Idempotency-Key", id="IdempotencyConflict"),
    pytest.param(
        PermanentJobError("init_image is gone", param="init_image"),
        422,
        "invalid_request",
        "init_image",
        id="PermanentJobError-default",
    ),
    pytest.param(
        PermanentJobError("image vanished", error_type="not_found", param="image_id"),
        404,
        "not_found",
        "image_id",
        id="PermanentJobError-not-found",
    ),
    pytest.param(
        PermanentJobError("stage broke for good", error_type="stage_failed", param="step"),
        500,
        "generation_failed",
        "step",
        id="PermanentJobError-other",
    ),
    pytest.param(UnknownKind("mystery", ("generate",)), 500, "generation_failed", None, id="UnknownKind"),
]


@pytest.mark.parametrize(("exc", "status", "error_type", "param"), DOMAIN)
def test_each_domain_exception_maps_to_its_status_type_and_param(
    exc: BaseException, status: int, error_type: str, param: str | None
) -> None:
    err = from_exception(exc)
    assert isinstance(err, ServiceError)
    assert (err.status_code, err.error_type, err.param) == (status, error_type, param)
    # A 4xx tells the client what was wrong in the domain exception's own words.
    if status < 500 or isinstance(exc, PermanentJobError):
        assert err.message == str(exc)


@pytest.mark.parametrize("exc", [p.values[0] for p in DOMAIN], ids=[p.id for p in DOMAIN])
def test_each_domain_exception_pickles_across_ray_handles(exc: BaseException) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert from_exception(back).param == from_exception(exc).param


def test_input_error_message_names_the_field_and_value() -> None:
    err = from_exception(InputError("width", 100, "a multiple of 8"))
    assert "width" in err.message and "100" in err.message and "a multiple of 8" in err.message


def test_backpressure_is_503_with_retry_after() -> None:
    from ray.serve.exceptions import BackPressureError

    err = from_exception(BackPressureError(num_queued_requests=32, max_queued_requests=32))
    assert isinstance(err, Overloaded)
    assert (err.status_code, err.error_type) == (503, "overloaded")
    retry_after = err.headers.get("Retry-After")
    assert retry_after is not None and int(retry_after) > 0


def test_an_unexpected_error_is_a_500_that_does_not_leak_its_text() -> None:
    err = from_exception(RuntimeError(SECRET))
    assert isinstance(err, GenerationFailed)
    assert (err.status_code, err.error_type, err.param) == (500, "generation_failed", None)
    assert "hunter2" not in err.message and "RuntimeError" not in err.message


def test_cancelled_and_model_config_errors_are_not_reported_as_bad_input() -> None:
    assert from_exception(ModelConfigError("dtype", "float8", "float16 or float32")).status_code == 500
    assert from_exception(Cancelled(3, 20)).status_code == 500


def test_a_ray_task_error_wrapping_an_input_error_is_unwrapped() -> None:
    from ray.exceptions import RayTaskError

    wrapped = _ray_task_error(InputError("height", 7, "a multiple of 8"))
    assert isinstance(wrapped, RayTaskError)
    assert "Traceback" in str(wrapped) or "pid=" in str(wrapped)  # the remote traceback, not the message

    err = from_exception(wrapped)
    assert (err.status_code, err.error_type, err.param) == (422, "invalid_request", "height")
    assert err.message == "height=7 is not allowed: a multiple of 8"
    assert is_transient(wrapped) is False
    assert describe_failure(wrapped) == ("height=7 is not allowed: a multiple of 8", "invalid_request", "height")


def test_a_plain_ray_task_error_is_unwrapped_too() -> None:
    from ray.exceptions import RayTaskError

    cause = JobNotFound(JOB_ID)
    rte = RayTaskError("Ingress.get", "Traceback: ...", cause)
    err = from_exception(rte)
    assert (err.status_code, err.param) == (404, "job_id")
    assert str(JOB_ID) in err.message


def test_a_ray_task_error_wrapping_a_runtime_error_stays_a_500_and_is_transient() -> None:
    wrapped = _ray_task_error(RuntimeError("CUDA out of memory"))
    err = from_exception(wrapped)
    assert (err.status_code, err.error_type) == (500, "generation_failed")
    assert "CUDA" not in err.message
    assert is_transient(wrapped) is True
    message, error_type, param = describe_failure(wrapped)
    # The recorded message is what clients see: neither the remote traceback nor the cause's text.
    assert message == INTERNAL_FAILURE
    assert "CUDA" not in message and "Traceback" not in message and str(os.getpid()) not in message
    assert (error_type, param) == ("generation_failed", None)


# -- is_transient -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        InputError("steps", 0, "1 to 150"),
        PermanentJobError("init_image is gone", param="init_image"),
        PermanentJobError("gone", error_type="not_found"),
        UnknownKind("mystery"),
        ModelConfigError("model", "/nowhere", "a diffusers folder"),
        Cancelled(2, 10),
        InvalidRequest("bad"),
        Unauthorized("who"),
        Forbidden("no"),
        NotFound("gone"),
        Conflict("again"),
        RateLimited("slow"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bad_input_config_mistakes_cancellation_and_4xx_are_not_transient(exc: BaseException) -> None:
    assert is_transient(exc) is False


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("boom"),
        ConnectionError("replica died"),
        TimeoutError("too slow"),
        GenerationFailed("stage broke"),
        Overloaded("full"),
        NotReady("loading"),
        GatewayTimeout("late"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_failures_and_5xx_are_transient(exc: BaseException) -> None:
    assert is_transient(exc) is True


# -- describe_failure -------------------------------------------------------------------------------------


def test_describe_failure_of_an_input_error_is_its_own_message_and_param() -> None:
    exc = InputError("width", 100, "a multiple of 8")
    assert describe_failure(exc) == (str(exc), "invalid_request", "width")


def test_describe_failure_of_a_runtime_error_records_only_a_safe_message() -> None:
    message, error_type, param = describe_failure(RuntimeError(SECRET))
    assert message == INTERNAL_FAILURE
    assert "hunter2" not in message and "RuntimeError" not in message
    assert error_type == "generation_failed"
    assert param is None


def test_describe_failure_keeps_a_permanent_errors_own_type() -> None:
    assert describe_failure(PermanentJobError("image vanished", error_type="not_found", param="image_id")) == (
        "image vanished",
        "not_found",
        "image_id",
    )
    message, error_type, param = describe_failure(UnknownKind("mystery", ("generate", "map")))
    assert error_type == "unknown_kind" and param is None
    assert "mystery" in message and "generate" in message and "map" in message


def test_describe_failure_of_a_not_found_and_a_service_error() -> None:
    assert describe_failure(AssetNotFound(SHA, "png")) == (f"no asset {SHA}.png", "not_found", "sha256")
    assert describe_failure(NotReady("model loading")) == ("model loading", "not_ready", None)


def test_describe_failure_of_a_huge_message_records_the_safe_one() -> None:
    assert describe_failure(RuntimeError("x" * 10_000))[0] == INTERNAL_FAILURE


# -- HTTP: one JSON shape ---------------------------------------------------------------------------------


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/input")
    async def _input() -> None:
        raise InputError("width", 100, "a multiple of 8")

    @app.get("/missing")
    async def _missing() -> None:
        raise NotFound("no such thing", param="thing_id")

    @app.get("/full")
    async def _full() -> None:
        raise Overloaded("queue full", headers={"Retry-After": "5"})

    @app.get("/job")
    async def _job() -> None:
        raise JobNotFound(JOB_ID)

    @app.get("/boom")
    async def _boom() -> None:
        raise RuntimeError(SECRET)

    @app.get("/typed")
    async def _typed(count: int) -> dict[str, int]:
        return {"count": count}

    @app.post("/echo")
    async def _echo(body: dict[str, object]) -> dict[str, int]:
        return {"keys": len(body)}

    # Starlette re-raises after the catch-all handler answered; the client must not turn that into an error.
    return TestClient(app, raise_server_exceptions=False)


def _assert_shape(body: object) -> dict[str, object]:
    assert isinstance(body, dict) and set(body) == {"error"}
    inner = body["error"]
    assert isinstance(inner, dict) and set(inner) == {"type", "message", "param"}
    return inner


def test_http_input_error_is_422_with_param(client: TestClient) -> None:
    resp = client.get("/input")
    assert resp.status_code == 422
    assert _assert_shape(resp.json()) == {
        "type": "invalid_request",
        "message": "width=100 is not allowed: a multiple of 8",
        "param": "width",
    }


def test_http_not_found_is_404(client: TestClient) -> None:
    resp = client.get("/missing")
    assert resp.status_code == 404
    assert _assert_shape(resp.json()) == {"type": "not_found", "message": "no such thing", "param": "thing_id"}


def test_http_domain_not_found_goes_through_the_table(client: TestClient) -> None:
    resp = client.get("/job")
    assert resp.status_code == 404
    assert _assert_shape(resp.json()) == {"type": "not_found", "message": f"no job with id {JOB_ID}", "param": "job_id"}


def test_http_overloaded_carries_retry_after(client: TestClient) -> None:
    resp = client.get("/full")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert _assert_shape(resp.json())["type"] == "overloaded"


def test_http_unexpected_error_is_a_500_that_hides_its_text(client: TestClient) -> None:
    resp = client.get("/boom")
    assert resp.status_code == 500
    inner = _assert_shape(resp.json())
    assert inner["type"] == "generation_failed" and inner["param"] is None
    assert "hunter2" not in resp.text and "RuntimeError" not in resp.text


def test_http_request_validation_is_the_same_shape(client: TestClient) -> None:
    resp = client.get("/typed", params={"count": "many"})
    assert resp.status_code == 422
    inner = _assert_shape(resp.json())
    assert inner["type"] == "invalid_request" and inner["param"] == "count"
    assert str(inner["message"]).startswith("count: ")


# -- Starlette's and FastAPI's own errors: the same shape -------------------------------------------------


def test_an_unknown_route_is_404_in_the_error_shape(client: TestClient) -> None:
    resp = client.get("/no/such/route")
    assert resp.status_code == 404
    assert _assert_shape(resp.json())["type"] == "not_found"


def test_a_wrong_method_is_405_in_the_error_shape_with_allow(client: TestClient) -> None:
    resp = client.delete("/typed")
    assert resp.status_code == 405
    assert _assert_shape(resp.json())["type"] == "method_not_allowed"
    assert resp.headers["allow"] == "GET"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"n": ' + b"7" * 5000 + b"}",  # past Python's 4300-digit int limit: ValueError in json.loads
        b"[" * 100_000 + b"]" * 100_000,  # past the decoder's recursion limit: RecursionError
    ],
    ids=["5000-digit-integer", "deeply-nested"],
)
def test_an_unparseable_body_is_400_in_the_error_shape_naming_the_body(client: TestClient, raw: bytes) -> None:
    resp = client.post("/echo", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    inner = _assert_shape(resp.json())
    assert inner["type"] == "invalid_request" and inner["param"] == "body"


def test_a_paid_apis_failures_map_to_their_status_and_only_transient_ones_are_retried() -> None:
    from pipelines.remote.errors import (
        BackendAuthError,
        BackendBudgetError,
        BackendInputError,
        BackendTimeout,
        BackendUnavailable,
    )

    cases = [
        (BackendAuthError("fal", "401 from the API"), 502, "backend_auth", False),
        (BackendBudgetError("openai", "insufficient_quota"), 402, "backend_budget", False),
        (BackendInputError("getimg", "width must be a multiple of 64", param="width"), 422, "invalid_request", False),
        (BackendUnavailable("runware", "503 after 3 retries"), 502, "backend_unavailable", True),
        (BackendTimeout("fal", "no answer in 60 s"), 502, "backend_timeout", True),
    ]
    for exc, status, error_type, transient in cases:
        mapped = errors.from_exception(exc)
        assert (mapped.status_code, mapped.error_type, errors.is_transient(exc)) == (status, error_type, transient)
        # What a failed job records names the backend (the message is ours, no key), not the internal sentence.
        message, recorded_type, _ = errors.describe_failure(exc)
        assert exc.backend in message and recorded_type == error_type
