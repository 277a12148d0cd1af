"""One shape for every kind's ``POST`` route: a body in, a job out (202 with its links, or 200 once it finishes
within ``?wait=``), ``?priority=`` and ``Idempotency-Key`` as for ``/jobs``.

:func:`add_job_route` writes the route, so a kind's route file says only what is its own: the path, the body type,
how the body becomes the kind's request, and the documentation.

This module does not use ``from __future__ import annotations``: the endpoint's signature is built here from real
types (FastAPI reads it to parse the body and the path parameters).
"""

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from serve_app.api.deps import ImagesDep, JobsDep
from serve_app.api.protocol import JobResponse
from serve_app.api.responses import accept_job
from serve_app.errors import BODY_ERRORS, error_responses

__all__ = ["JOB_RESPONSES", "WEBHOOK", "add_job_route"]

JOB_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": JobResponse, "description": "Finished within `wait`."},
    **error_responses(*BODY_ERRORS, 404, 409, 503),
}

_WAIT = Annotated[float, Query(ge=0, le=600, allow_inf_nan=False, description="Seconds to wait for the result.")]
_PRIORITY = Annotated[
    int | None, Query(ge=-100, le=100, description="Higher runs first; at most `jobs.max_client_priority`.")
]
_IDEMPOTENCY = Annotated[str | None, Header(max_length=255)]
WEBHOOK = Annotated[
    str | None,
    Query(
        max_length=2048,
        description="POST the job's end here, signed per Standard Webhooks (docs/WEBHOOKS.md); needs "
        "LIMNER_WEBHOOK_SECRET on the service.",
    ),
]
WEBHOOK_ON_START = Annotated[
    bool, Query(description="Also POST `job.started` to `webhook_url` each time an attempt starts.")
]


def add_job_route(
    router: APIRouter,
    path: str,
    *,
    kind: str,
    body: type,
    to_request: Callable[..., Any],
    summary: str,
    description: str,
    path_params: tuple[str, ...] = (),
) -> None:
    """Adds ``POST path`` to ``router``: it submits a job of ``kind`` made by ``to_request(body, **path_params)``.

    Args:
        router: Where the route goes.
        path: The route's path (its ``{name}`` parameters listed in ``path_params``).
        kind: The job kind.
        body: The pydantic body type.
        to_request: Turns the parsed body (and the path parameters, by name) into the kind's request.
        summary: The OpenAPI summary.
        description: The OpenAPI description (what the route does, what ``result`` holds).
        path_params: Names of the path's parameters, each a string.
    """

    async def endpoint(**kwargs: Any) -> JSONResponse:
        params = {name: kwargs[name] for name in path_params}
        request = to_request(kwargs["body"], **params)
        return await accept_job(
            kwargs["jobs"],
            kwargs["images"],
            kind,
            request,
            wait=kwargs["wait"],
            priority=kwargs["priority"],
            idempotency_key=kwargs["idempotency_key"],
            webhook_url=kwargs["webhook_url"],
            webhook_on_start=kwargs["webhook_on_start"],
        )

    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [inspect.Parameter(name, keyword, annotation=str) for name in path_params]
    parameters += [
        inspect.Parameter("body", keyword, annotation=body),
        inspect.Parameter("jobs", keyword, annotation=JobsDep),
        inspect.Parameter("images", keyword, annotation=ImagesDep),
        inspect.Parameter("wait", keyword, annotation=_WAIT, default=0),
        inspect.Parameter("priority", keyword, annotation=_PRIORITY, default=None),
        inspect.Parameter("idempotency_key", keyword, annotation=_IDEMPOTENCY, default=None),
        inspect.Parameter("webhook_url", keyword, annotation=WEBHOOK, default=None),
        inspect.Parameter("webhook_on_start", keyword, annotation=WEBHOOK_ON_START, default=False),
    ]
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=JSONResponse)  # type: ignore[attr-defined]
    endpoint.__name__ = f"submit_{kind}"
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        summary=summary,
        description=description,
        status_code=202,
        response_model=JobResponse,
        responses=JOB_RESPONSES,
        name=f"submit_{kind}",
    )
