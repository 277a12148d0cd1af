"""The application builder: ``configs/serve.yaml`` args in, a bound Ray Serve application out.

``serve run configs/serve.yaml`` imports :func:`build_app` and calls it with the YAML's ``args``. Nothing
here runs at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ray.serve import Application

from serve_app.config import AppConfig, Settings

__all__ = ["build_app", "resolve_model_source"]

logger = logging.getLogger("ray.serve.limner")


def resolve_model_source(model: str, settings: Settings) -> str:
    """The generator's model source: ``"tiny"``, or a local path (``"env"`` reads LIMNER_SDXL_PATH).

    Raises:
        ValueError: ``"env"`` without LIMNER_SDXL_PATH, or a path that does not exist.
    """
    if model == "tiny":
        return model
    path = settings.sdxl_path if model == "env" else model
    if not path:
        raise ValueError("generator.model is 'env' but LIMNER_SDXL_PATH is not set")
    if not Path(path).expanduser().exists():
        raise ValueError(f"generator.model path {path!r} does not exist")
    return str(Path(path).expanduser().resolve())


def _cluster_has_gpus() -> bool:
    import ray

    return ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0


def build_app(args: dict[str, Any]) -> Application:
    """Builds the deployment graph from the YAML's app args.

    Args:
        args: ``applications[].args``; validated by :class:`AppConfig`, unknown keys rejected.

    Returns:
        The bound ingress, ready for ``serve run``.
    """
    from deployments.composer import Composer
    from deployments.generator import Generator
    from deployments.ingress import Ingress
    from deployments.zmq_bridge import ZmqBridgeDeployment

    config = AppConfig.model_validate(args or {})
    settings = Settings()
    source = resolve_model_source(config.generator.model, settings)
    model_name = config.generator.model_name or Path(source).stem
    gen_config = config.generator.model_copy(update={"model_name": model_name})

    generator = Generator
    if config.device == "auto" and config.generator.device == "auto" and _cluster_has_gpus():
        # GPU profile on a cluster with GPUs. Options in the YAML's deployments list still override these.
        generator = Generator.options(ray_actor_options={"num_gpus": config.generator.num_gpus_when_auto})
        gen_config = gen_config.model_copy(update={"device": "cuda"})
    logger.info("limner: model=%s device=%s batch<=%d", source, gen_config.device, gen_config.max_batch_size)

    bridge = None
    if config.zmq_bridge is not None and config.zmq_bridge.enabled:
        bridge = ZmqBridgeDeployment.bind(config.zmq_bridge, config.zmq_bridge.bridge_config(settings.data_dir))
    return Ingress.bind(
        config,
        settings,
        Composer.bind(config.composer, model_name),
        generator.bind(gen_config, source, str(Path(settings.model_cache).expanduser().resolve())),
        bridge,
    )
