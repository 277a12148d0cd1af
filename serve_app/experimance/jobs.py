"""A bridge request as a generic job: :class:`BridgeJob` in, the generate kind's request and options out.

The installation's requests become ordinary ``generate`` jobs (source ``zmq``, high priority, a deadline of
the installation's timeout, queue time included), submitted through the same job service as HTTP requests.
:class:`IngressRenderer` is the bridge's render and cancel over the ingress's ``submit_job`` / ``job_image`` /
``cancel_jobs``; a request the bridge gives up on while its submit is still under way has its job cancelled
as soon as the submit returns the id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pipelines import encode
from serve_app.db.models import JobSource
from serve_app.experimance.bridge import BridgeJob
from serve_app.jobs.kinds.generate import GenerateRequest
from serve_app.jobs.service import SubmitOptions
from serve_app.schemas import PartialRequest

__all__ = ["IngressRenderer", "generate_request", "render_size"]

logger = logging.getLogger("ray.serve.limner.experimance")


def render_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size to generate for a requested size: within ``max_side``, aspect kept, multiples of 8."""
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    return max(64, round(width * scale / 8) * 8), max(64, round(height * scale / 8) * 8)


def generate_request(
    job: BridgeJob,
    *,
    max_render_side: int | None,
    depth_controlnet: bool,
    control_scale: float,
    priority: int,
    now: float | None = None,
    backend: str | None = None,
) -> tuple[GenerateRequest, SubmitOptions]:
    """The generate kind's request and the submit options for a bridge job.

    Args:
        job: The bridge's request.
        max_render_side: Generate at most this many pixels on the longer side (the bridge resizes after).
        depth_controlnet: Condition on the depth map through the ControlNet instead of starting from it.
        control_scale: ControlNet conditioning scale for depth maps.
        priority: Job priority.
        now: Epoch seconds to measure the deadline from (default: now).
        backend: Where it is drawn (``local``, ``auto``, a paid API: the installation's own server offers FAL
            and OpenAI); None: ``remote.routing.default``. The fallback rules are the bridge's, unchanged.
    """
    width, height = render_size(job.width, job.height, max_render_side)
    init, control = job.init_image, None
    if depth_controlnet and job.depth_map is not None:
        # The depth map conditions through the ControlNet; only a reference image is an img2img start.
        control = job.depth_map
        init = job.init_image if job.init_kind == "reference_image" else None
    partial = PartialRequest(
        prompt=job.prompt, negative_prompt=job.negative_prompt, width=width, height=height, seed=job.seed
    )
    request = GenerateRequest(
        partial,
        format="png",
        style=job.style,
        init_png=None if init is None else encode.encode(init.convert("RGB"), "png"),
        strength=job.strength,
        control_png=None if control is None else encode.encode(control.convert("RGB"), "png"),
        control_scale=control_scale,
        door="zmq",
        backend=backend,
    )
    left = None if not job.deadline else max(0.001, job.deadline - (time.time() if now is None else now))
    # The installation paces itself: its requests are never refused for queue length.
    options = SubmitOptions(priority=priority, deadline_s=left, source=JobSource.ZMQ, admit=False)
    return request, options


class IngressRenderer:
    """The bridge's ``render`` and ``cancel``, as generic jobs through the ingress.

    A request the bridge gives up on (``clear_queue``, timeout, stop) has its job cancelled, whatever stage the
    render is at: while waiting for the image, or while ``submit_job`` is still under way (the job may be
    committed already; it is cancelled the moment its id comes back).

    Args:
        handle: Returns the ingress handle (looked up when first needed); its methods are called as
            ``handle.submit_job.remote(...)``.
        max_render_side: See :func:`generate_request`.
        depth_controlnet: See :func:`generate_request`.
        control_scale: See :func:`generate_request`.
        priority: Job priority of bridge requests.
        backend: See :func:`generate_request`.
    """

    def __init__(
        self,
        handle: Callable[[], Any],
        *,
        max_render_side: int | None,
        depth_controlnet: bool,
        control_scale: float,
        priority: int,
        backend: str | None = None,
    ) -> None:
        self._handle = handle
        self._backend = backend
        self._max_render_side = max_render_side
        self._depth_controlnet = depth_controlnet
        self._control_scale = control_scale
        self._priority = priority
        self._jobs: dict[str, str] = {}  # request id → job id, while waiting for the image
        self._submitting: set[str] = set()  # request ids whose submit_job has not returned
        self._abandoned: set[str] = set()  # of those, the ones the bridge gave up on
        self._tasks: set[asyncio.Task[None]] = set()

    async def render(self, job: BridgeJob) -> bytes:
        """Submits ``job`` as a ``generate`` job and returns its PNG.

        Raises:
            RuntimeError: The bridge gave up on the request while it was being submitted (its job is cancelled).
            Exception: Whatever the ingress raised (a failed, cancelled or late job).
        """
        request, options = generate_request(
            job,
            max_render_side=self._max_render_side,
            depth_controlnet=self._depth_controlnet,
            control_scale=self._control_scale,
            priority=self._priority,
            backend=self._backend,
        )
        ingress = self._handle()
        request_id = job.request_id
        # Shielded: a cancellation must not lose the id of a job the ingress may have committed already.
        submit = asyncio.ensure_future(_awaited(ingress.submit_job.remote("generate", request, options)))
        self._submitting.add(request_id)
        try:
            job_id: str = await asyncio.shield(submit)
        except asyncio.CancelledError:
            if not submit.done():
                submit.add_done_callback(self._cancel_once_submitted)
            elif not submit.cancelled() and submit.exception() is None:
                self._spawn_cancel([submit.result()])
            raise
        finally:
            self._submitting.discard(request_id)
            abandoned = request_id in self._abandoned
            self._abandoned.discard(request_id)
        if abandoned:
            self._spawn_cancel([job_id])
            raise RuntimeError(f"request {request_id} was given up while its job {job_id} was being submitted")
        self._jobs[request_id] = job_id
        try:
            timeout = max(0.1, (job.deadline or time.time() + 600) - time.time())
            png: bytes = await ingress.job_image.remote(job_id, timeout, "png")
            return png
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling() and self._jobs.pop(request_id, None) is not None:
                self._spawn_cancel([job_id])  # given up while waiting: the job's work stops too
            raise
        finally:
            self._jobs.pop(request_id, None)

    async def cancel(self, request_ids: list[str]) -> None:
        """Cancels the jobs of requests the bridge gave up on; one still being submitted is cancelled once known."""
        job_ids = []
        for request_id in request_ids:
            job_id = self._jobs.pop(request_id, None)
            if job_id is not None:
                job_ids.append(job_id)
            elif request_id in self._submitting:
                self._abandoned.add(request_id)
        if job_ids:
            await self._handle().cancel_jobs.remote(job_ids)

    def _cancel_once_submitted(self, submit: asyncio.Future[str]) -> None:
        if submit.cancelled():
            return
        if submit.exception() is not None:
            logger.debug("submit of an abandoned request failed", exc_info=submit.exception())
            return
        self._spawn_cancel([submit.result()])

    def _spawn_cancel(self, job_ids: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(self._call_cancel(job_ids), name="limner-bridge-cancel-job")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call_cancel(self, job_ids: list[str]) -> None:
        try:
            await self._handle().cancel_jobs.remote(job_ids)
        except Exception:
            # The bridge has answered or dropped the request already; a failed cancel only wastes compute.
            logger.exception("cancel of jobs %s failed", job_ids)


async def _awaited(response: Awaitable[str]) -> str:
    return await response
