"""The ZMQ bridge deployment: limner as a drop-in image server for the Experimance installation.

Thin by design: the protocol, ordering, fallbacks and files are :class:`serve_app.experimance.bridge.ZmqBridge`.
This class runs it inside a Serve replica and renders each request as a durable job through the ingress
(source ``zmq``, high priority, a deadline of the installation's timeout). One replica: the bridge is one
worker on the installation's bus.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

from PIL import Image
from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.config import ZmqBridgeSection
from serve_app.experimance.bridge import BridgeConfig, BridgeJob, ZmqBridge
from serve_app.schemas import BridgeSubmission

__all__ = ["ZmqBridgeDeployment", "render_size"]

logger = logging.getLogger("ray.serve.limner.zmq")


def render_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size to generate for a requested size: within ``max_side``, aspect kept, multiples of 8."""
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    return max(64, round(width * scale / 8) * 8), max(64, round(height * scale / 8) * 8)


def _png(image: Image.Image | None) -> bytes | None:
    if image is None:
        return None
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


@serve.deployment(name="ZmqBridge", num_replicas=1, ray_actor_options={"num_cpus": 0})
class ZmqBridgeDeployment:
    """Runs the bridge; renders through the ingress's job API.

    Args:
        section: The ``zmq_bridge`` section of the app config.
        config: The resolved bridge configuration (output directory filled in).
    """

    async def __init__(self, section: ZmqBridgeSection, config: BridgeConfig) -> None:
        self._section = section
        self._ingress: DeploymentHandle | None = None
        self._jobs: dict[str, str] = {}  # request id → job id, while rendering
        self._bridge = ZmqBridge(config, self._render, cancel=self._cancel)
        await self._bridge.start()
        logger.info(
            "zmq bridge: PULL tcp://%s:%d, PUSH tcp://%s:%d, writing to %s",
            config.host,
            config.request_port,
            config.host,
            config.result_port,
            self._bridge.output_dir,
        )

    def _handle(self) -> DeploymentHandle:
        # Looked up when first needed: the ingress deploys beside this replica, not before it.
        if self._ingress is None:
            app = serve.get_replica_context().app_name
            self._ingress = serve.get_deployment_handle("Ingress", app_name=app)
        return self._ingress

    async def _render(self, job: BridgeJob) -> bytes:
        width, height = render_size(job.width, job.height, self._section.max_render_side)
        init, control = job.init_image, None
        if self._section.depth_controlnet and job.depth_map is not None:
            # The depth map conditions through the ControlNet; only a reference image is an img2img start.
            control = job.depth_map
            init = job.init_image if job.init_kind == "reference_image" else None
        prompt_negative = job.negative_prompt
        submission = BridgeSubmission(
            request_id=job.request_id,
            prompt=job.prompt,
            negative_prompt=prompt_negative,
            width=width,
            height=height,
            seed=job.seed,
            style=job.style,
            init_png=_png(init),
            strength=job.strength,
            control_png=_png(control),
            control_scale=self._section.control_scale,
            deadline_at=job.deadline or None,
            priority=self._section.priority,
        )
        ingress = self._handle()
        job_id: str = await ingress.bridge_submit.remote(submission)
        self._jobs[job.request_id] = job_id
        try:
            timeout = max(0.1, (job.deadline or time.time() + 600) - time.time())
            png: bytes = await ingress.bridge_result.remote(job_id, timeout)
            return png
        finally:
            self._jobs.pop(job.request_id, None)

    async def _cancel(self, request_ids: list[str]) -> None:
        job_ids = [self._jobs[r] for r in request_ids if r in self._jobs]
        if job_ids:
            await self._handle().bridge_cancel.remote(job_ids)

    async def check_health(self) -> None:
        if not self._bridge.healthy:
            raise RuntimeError("the ZMQ bridge's loops stopped")

    async def stats(self) -> dict[str, Any]:
        """Requests, replies, fallbacks, drops and latency sums (see ``BridgeStats``)."""
        out: dict[str, Any] = self._bridge.stats().as_dict()
        return out

    async def __del__(self) -> None:
        await self._bridge.stop()
