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

__all__ = ["build_app", "deployment_options", "gpu_profile", "resolve_model_source"]

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


def deployment_options(config: AppConfig, *, cluster_has_gpus: bool) -> dict[str, dict[str, Any]]:
    """The Ray options the builder gives each deployment, before the YAML's ``deployments:`` list.

    This is the one place in code that sets them; ``serve run``/``serve deploy`` then apply the YAML entry of
    the same name on top, so anything here can be overridden there. Light deployments reserve no CPU (on a
    2-core machine a reserved core each would leave none for the generator); the generator asks for a GPU
    share only in the GPU profile on a cluster that has GPUs (a GPU-less cluster would never start it).

    Returns:
        Deployment name → options for ``Deployment.options``.
    """
    generator: dict[str, Any] = {"num_cpus": 1}
    if gpu_profile(config, cluster_has_gpus=cluster_has_gpus):
        generator["num_gpus"] = config.generator.num_gpus_when_auto
    options: dict[str, dict[str, Any]] = {
        "Ingress": {"ray_actor_options": {"num_cpus": 0}},
        "Composer": {"ray_actor_options": {"num_cpus": 0}},
        "Overlay": {"ray_actor_options": {"num_cpus": 0}},
        "Enhancer": {"ray_actor_options": {"num_cpus": 0}},
        "Generator": {"ray_actor_options": generator},
    }
    if config.remote.configured:
        options["Remote"] = {"ray_actor_options": {"num_cpus": 0}}
    if config.zmq_bridge is not None and config.zmq_bridge.enabled:
        # One worker on the installation's bus: two would each take requests and reply out of order.
        options["ZmqBridge"] = {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0}}
    return options


def gpu_profile(config: AppConfig, *, cluster_has_gpus: bool) -> bool:
    """Whether the builder moves the generator to CUDA by itself: ``device: auto`` everywhere and a cluster
    with GPUs. An explicit ``device: cuda`` is the operator's choice: its GPU share comes from the YAML's
    ``deployments:`` entry (configs/serve.gpu.yaml), as a replica asking for a GPU the cluster lacks would
    never start."""
    return config.device == "auto" and config.generator.device == "auto" and cluster_has_gpus


def build_app(args: dict[str, Any]) -> Application:
    """Builds the deployment graph from the YAML's app args.

    Args:
        args: ``applications[].args``; validated by :class:`AppConfig`, unknown keys rejected.

    Returns:
        The bound ingress, ready for ``serve run``.
    """
    from deployments.composer import Composer
    from deployments.enhancer import Enhancer
    from deployments.generator import Generator
    from deployments.ingress import Ingress
    from deployments.overlay import Overlay
    from deployments.remote import Remote
    from deployments.zmq_bridge import ZmqBridgeDeployment
    from serve_app.remote.stage import require_keys

    config = AppConfig.model_validate(args or {})
    settings = Settings()
    require_keys(config.remote)  # refuse to serve half a graph: `serve run` exits non-zero, naming what to set
    source = resolve_model_source(config.generator.model, settings)
    model_name = config.generator.model_name or Path(source).stem
    gen_config = config.generator.model_copy(update={"model_name": model_name})
    gpus = _cluster_has_gpus()
    if gpu_profile(config, cluster_has_gpus=gpus):
        gen_config = gen_config.model_copy(update={"device": "cuda"})
    options = deployment_options(config, cluster_has_gpus=gpus)
    for name, opts in options.items():
        logger.info("limner: %s options %s (the YAML deployments list overrides these)", name, opts)
    logger.info("limner: model=%s device=%s batch<=%d", source, gen_config.device, gen_config.max_batch_size)

    bridge = None
    if "ZmqBridge" in options and config.zmq_bridge is not None:
        bridge = ZmqBridgeDeployment.options(**options["ZmqBridge"]).bind(
            config.zmq_bridge, config.zmq_bridge.bridge_config(settings.data_dir)
        )
    cache_dir = str(Path(settings.model_cache).expanduser().resolve())
    return Ingress.options(**options["Ingress"]).bind(
        config,
        settings,
        Composer.options(**options["Composer"]).bind(config.composer, model_name, config.generator.limits),
        Generator.options(**options["Generator"]).bind(gen_config, source, cache_dir),
        bridge,
        Overlay.options(**options["Overlay"]).bind(config.overlay),
        Enhancer.options(**options["Enhancer"]).bind(config.enhancer, cache_dir),
        Remote.options(**options["Remote"]).bind(config.remote) if "Remote" in options else None,
    )
