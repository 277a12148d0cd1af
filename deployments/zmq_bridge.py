"""The ZMQ bridge deployment: limner as a drop-in image server for the Experimance installation.

Thin by design: the protocol, ordering, fallbacks and files are :class:`serve_app.experimance.bridge.ZmqBridge`.
This class runs it inside a Serve replica and renders each request as a durable job through the ingress
(source ``zmq``, high priority, a deadline of the installation's timeout). One replica: the bridge is one
worker on the installation's bus.
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.config import ZmqBridgeSection
from serve_app.experimance.bridge import ZmqBridge
from serve_app.experimance.config import BridgeConfig
from serve_app.experimance.jobs import IngressRenderer

__all__ = ["ZmqBridgeDeployment"]

logger = logging.getLogger("ray.serve.limner.experimance")


@serve.deployment(name="ZmqBridge")
class ZmqBridgeDeployment:
    """Runs the bridge; renders through the ingress's generic job API.

    Args:
        section: The ``zmq_bridge`` section of the app config.
        config: The resolved bridge configuration (output directory filled in).
    """

    async def __init__(self, section: ZmqBridgeSection, config: BridgeConfig) -> None:
        self._section = section
        self._ingress: DeploymentHandle | None = None
        self._renderer = IngressRenderer(
            self._handle,
            max_render_side=section.max_render_side,
            depth_controlnet=section.depth_controlnet,
            control_scale=section.control_scale,
            priority=section.priority,
            backend=section.backend,
        )
        self._bridge = ZmqBridge(config, self._renderer.render, cancel=self._renderer.cancel)
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

    async def check_health(self) -> None:
        if not self._bridge.healthy:
            raise RuntimeError("the ZMQ bridge's loops stopped")

    async def stats(self) -> dict[str, Any]:
        """Requests, replies, fallbacks, drops and latency sums (see ``BridgeStats``)."""
        out: dict[str, Any] = self._bridge.stats().as_dict()
        return out

    async def __del__(self) -> None:
        await self._bridge.stop()
