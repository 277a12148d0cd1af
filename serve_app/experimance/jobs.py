"""A bridge request as a generic job: :class:`BridgeJob` in, the generate kind's request and options out.

The installation's requests become ordinary ``generate`` jobs (source ``zmq``, high priority, a deadline of
the installation's timeout, queue time included), submitted through the same job service as HTTP requests.
"""

from __future__ import annotations

import time

from pipelines import encode
from serve_app.db.models import JobSource
from serve_app.experimance.bridge import BridgeJob
from serve_app.jobs.kinds.generate import GenerateRequest
from serve_app.jobs.service import SubmitOptions
from serve_app.schemas import PartialRequest

__all__ = ["generate_request", "render_size"]


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
) -> tuple[GenerateRequest, SubmitOptions]:
    """The generate kind's request and the submit options for a bridge job.

    Args:
        job: The bridge's request.
        max_render_side: Generate at most this many pixels on the longer side (the bridge resizes after).
        depth_controlnet: Condition on the depth map through the ControlNet instead of starting from it.
        control_scale: ControlNet conditioning scale for depth maps.
        priority: Job priority.
        now: Epoch seconds to measure the deadline from (default: now).
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
    )
    left = None if not job.deadline else max(0.001, job.deadline - (time.time() if now is None else now))
    # The installation paces itself: its requests are never refused for queue length.
    options = SubmitOptions(priority=priority, deadline_s=left, source=JobSource.ZMQ, admit=False)
    return request, options
