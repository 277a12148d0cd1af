"""A bridge request becomes an ordinary generate job: sizes, conditioning images, deadline and options."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from PIL import Image

from pipelines import encode
from pipelines.styles import Style
from serve_app.experimance.bridge import BridgeJob
from serve_app.experimance.jobs import IngressRenderer, generate_request, render_size
from serve_app.jobs import JobSource
from serve_app.jobs.kinds.generate import GenerateRequest
from serve_app.jobs.service import SubmitOptions
from tests.experimance._core import CoreRenderRequest, FakeCore, eventually, png_bytes
from tests.experimance.conftest import StartBridge


def _job(**kw: object) -> BridgeJob:
    base: dict[str, object] = {
        "request_id": "r-1", "prompt": "a valley", "negative_prompt": "blur", "width": 1024, "height": 768,
        "seed": 9, "received_at": 1000.0, "deadline": 1012.0,
    }  # fmt: skip
    base.update(kw)
    return BridgeJob(**base)  # type: ignore[arg-type]


def test_render_size_keeps_the_aspect_within_the_cap_in_multiples_of_8() -> None:
    assert render_size(1024, 768, 256) == (256, 192)  # 1024 * 0.25, 768 * 0.25
    assert render_size(1000, 1000, None) == (1000, 1000)
    assert render_size(100, 2000, 256) == (64, 256)  # 12.8 rounds to 16, then the 64 floor


def test_a_depth_map_conditions_through_the_controlnet_when_configured() -> None:
    depth = Image.new("L", (32, 32), 128)
    job = _job(init_image=depth, init_kind="depth_map", strength=0.8, depth_map=depth, style=Style("s"))
    request, options = generate_request(
        job, max_render_side=256, depth_controlnet=True, control_scale=0.7, priority=50, now=1002.0
    )
    assert (request.partial.width, request.partial.height, request.partial.seed) == (256, 192, 9)
    assert request.init_png is None  # a depth map is no img2img start when it conditions the ControlNet
    assert request.control_png is not None and request.control_scale == 0.7
    assert encode.decode(request.control_png).convert("L").getpixel((0, 0)) == 128
    assert request.style == Style("s") and request.partial.negative_prompt == "blur"
    assert options.priority == 50 and options.source == JobSource.ZMQ and options.admit is False
    assert options.deadline_s == 10.0  # 1012 - 1002: the installation's timeout counts queue time


def test_without_the_controlnet_the_depth_map_is_the_img2img_start() -> None:
    depth = Image.new("L", (32, 32), 40)
    job = _job(init_image=depth, init_kind="depth_map", strength=0.8, depth_map=depth, deadline=0.0)
    request, options = generate_request(
        job, max_render_side=None, depth_controlnet=False, control_scale=1.0, priority=1
    )
    assert request.control_png is None and request.init_png is not None and request.strength == 0.8
    assert options.deadline_s is None  # no deadline given, none set


# -- IngressRenderer: cancels reach the job whatever stage the render is at -----------------------------------


class _Remote:
    """One handle method: ``handle.<name>.remote(...)`` returns an awaitable, as a Serve handle's does."""

    def __init__(self, fn: Callable[..., Awaitable[Any]]) -> None:
        self.remote = fn


class FakeIngress:
    """The ingress's submit_job / job_image / cancel_jobs over an in-memory job table.

    ``submit_job`` commits the job, then waits on ``submit_gate`` before answering (the window the test holds
    open: the job exists, its id is not back yet); ``job_image`` returns once the job is released or cancelled.
    """

    def __init__(self) -> None:
        self.submit_gate = asyncio.Event()
        self.submit_started: list[str] = []  # prompts, in the order their submits began
        self.jobs: dict[str, str] = {}  # prompt → job id
        self.cancelled: list[str] = []
        self._done: dict[str, asyncio.Event] = {}
        self.submit_job = _Remote(self._submit)
        self.job_image = _Remote(self._job_image)
        self.cancel_jobs = _Remote(self._cancel)

    async def _submit(self, kind: str, request: GenerateRequest, options: SubmitOptions) -> str:
        assert kind == "generate"
        self.submit_started.append(request.partial.prompt)
        job_id = f"job-{len(self.jobs)}"
        self.jobs[request.partial.prompt] = job_id  # committed: the dispatcher will run it
        self._done[job_id] = asyncio.Event()
        await self.submit_gate.wait()
        return job_id

    async def _job_image(self, job_id: str, timeout_s: float, fmt: str) -> bytes:
        await self._done[job_id].wait()
        if job_id in self.cancelled:
            raise RuntimeError(f"job {job_id} was cancelled")
        return png_bytes(Image.new("RGB", (64, 64), (200, 10, 10)))

    async def _cancel(self, job_ids: list[str]) -> None:
        self.cancelled.extend(job_ids)
        for job_id in job_ids:
            self._done[job_id].set()

    def release(self, job_id: str) -> None:
        self._done[job_id].set()


def _renderer(ingress: FakeIngress) -> IngressRenderer:
    return IngressRenderer(
        lambda: ingress, max_render_side=None, depth_controlnet=False, control_scale=1.0, priority=50
    )


async def test_a_cancel_during_submit_cancels_the_job_once_its_id_is_known() -> None:
    """Before: the id was recorded only after submit_job returned, and cancel() found nothing to cancel."""
    ingress = FakeIngress()
    renderer = _renderer(ingress)
    render = asyncio.create_task(renderer.render(_job(request_id="r-1", prompt="held", deadline=0.0)))
    await eventually(lambda: ingress.submit_started == ["held"], what="the submit to start")
    await renderer.cancel(["r-1"])  # the bridge gives up (a timeout) while the submit is under way
    assert ingress.cancelled == []  # no id yet: nothing can be cancelled now
    ingress.submit_gate.set()
    await eventually(lambda: ingress.cancelled == [ingress.jobs["held"]], what="the job to be cancelled")
    with pytest.raises(RuntimeError, match="given up"):
        await render


async def test_a_render_cancelled_during_submit_cancels_the_job_once_its_id_is_known() -> None:
    ingress = FakeIngress()
    renderer = _renderer(ingress)
    render = asyncio.create_task(renderer.render(_job(request_id="r-1", prompt="held", deadline=0.0)))
    await eventually(lambda: ingress.submit_started == ["held"], what="the submit to start")
    render.cancel()  # clear_queue or the bridge's timeout cancels the render task itself
    with pytest.raises(asyncio.CancelledError):
        await render
    assert ingress.cancelled == []  # committed, but its id is not back yet
    ingress.submit_gate.set()  # the submit was not cut short: its answer is still learnt
    await eventually(lambda: ingress.cancelled == [ingress.jobs["held"]], what="the job to be cancelled")


async def test_a_render_cancelled_while_waiting_cancels_its_job_once() -> None:
    ingress = FakeIngress()
    ingress.submit_gate.set()
    renderer = _renderer(ingress)
    render = asyncio.create_task(renderer.render(_job(request_id="r-1", prompt="waiting", deadline=0.0)))
    await eventually(lambda: "waiting" in ingress.jobs, what="the job to be submitted")
    render.cancel()
    await renderer.cancel(["r-1"])  # the bridge's own cancel arrives too: still one cancel of the job
    with pytest.raises(asyncio.CancelledError):
        await render
    await eventually(lambda: ingress.cancelled == [ingress.jobs["waiting"]], what="the job to be cancelled")
    for _ in range(5):
        await asyncio.sleep(0)
    assert ingress.cancelled == [ingress.jobs["waiting"]]


async def test_a_finished_render_cancels_nothing() -> None:
    ingress = FakeIngress()
    ingress.submit_gate.set()
    renderer = _renderer(ingress)
    render = asyncio.create_task(renderer.render(_job(request_id="r-1", prompt="quick", deadline=0.0)))
    await eventually(lambda: "quick" in ingress.jobs, what="the job to be submitted")
    ingress.release(ingress.jobs["quick"])
    assert (await render).startswith(b"\x89PNG")
    await renderer.cancel(["r-1"])  # a late cancel for an answered request
    assert ingress.cancelled == []


async def test_clear_queue_during_submit_cancels_the_earlier_job_through_the_bridge(
    core: FakeCore, start_bridge: StartBridge
) -> None:
    ingress = FakeIngress()
    renderer = _renderer(ingress)
    await start_bridge(renderer.render, cancel=renderer.cancel, max_concurrent_renders=2)
    first = CoreRenderRequest(prompt="first", width=64, height=64)
    clearing = CoreRenderRequest(prompt="clearing", width=64, height=64, clear_queue=True)
    await core.send(first)
    await eventually(lambda: ingress.submit_started == ["first"], what="the first submit to start")
    await core.send(clearing)
    await eventually(lambda: ingress.submit_started == ["first", "clearing"], what="the second submit")
    ingress.submit_gate.set()
    ingress.release(ingress.jobs["clearing"])
    assert (await core.receive()).request_id == clearing.request_id
    await eventually(lambda: ingress.cancelled == [ingress.jobs["first"]], what="the first job to be cancelled")
    await core.assert_silent(0.2)  # the cleared request gets no reply
