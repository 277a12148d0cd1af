"""Config validation (serve_app/config.py) and build_app's option resolution (serve_app/app.py), without Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from serve_app.app import deployment_options, gpu_profile, resolve_model_source
from serve_app.config import AppConfig, Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"serve.yaml": ROOT / "configs" / "serve.yaml", "serve.gpu.yaml": ROOT / "configs" / "serve.gpu.yaml"}
LIGHT = ("Ingress", "Composer", "Overlay", "Enhancer")
BRIDGE_ON = {"zmq_bridge": {"enabled": True}}
BRIDGE_OFF = {"zmq_bridge": {"enabled": False}}


def _application(name: str) -> dict[str, Any]:
    doc = yaml.safe_load(CONFIGS[name].read_text())
    app = doc["applications"][0]
    assert isinstance(app, dict)
    return app


def _extra_forbidden_locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in exc.value.errors() if e["type"] == "extra_forbidden"]


def _all_actor_options(options: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [opts.get("ray_actor_options", {}) for opts in options.values()]


# -- AppConfig validation ---------------------------------------------------------------------------------


def test_defaults_validate() -> None:
    config = AppConfig.model_validate({})
    assert config.device == "auto" and config.generator.device == "auto"
    assert config.zmq_bridge is None


def test_an_unknown_top_level_key_is_refused_and_named() -> None:
    with pytest.raises(ValidationError) as exc:
        AppConfig.model_validate({"devise": "cpu"})
    assert _extra_forbidden_locs(exc) == [("devise",)]
    assert "devise" in str(exc.value)


@pytest.mark.parametrize(
    ("section", "key"),
    [("generator", "max_batch"), ("composer", "stepz"), ("ingress", "port"), ("jobs", "retries"), ("cache", "ttl")],
)
def test_an_unknown_nested_key_is_refused_and_named(section: str, key: str) -> None:
    with pytest.raises(ValidationError) as exc:
        AppConfig.model_validate({section: {key: 1}})
    assert _extra_forbidden_locs(exc) == [(section, key)]
    assert key in str(exc.value)


def test_an_unknown_key_in_a_size_preset_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        AppConfig.model_validate({"composer": {"presets": {"square": {"width": 64, "height": 64, "depth": 3}}}})
    assert _extra_forbidden_locs(exc) == [("composer", "presets", "square", "depth")]


def test_an_unknown_key_in_the_bridge_section_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        AppConfig.model_validate({"zmq_bridge": {"enabled": True, "reqest_port": 5564}})
    assert ("zmq_bridge", "reqest_port") in _extra_forbidden_locs(exc)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_top_level_device_flows_down_to_the_generator(device: str) -> None:
    config = AppConfig.model_validate({"device": device})
    assert config.generator.device == device


def test_an_explicit_generator_device_wins_over_the_top_level_one() -> None:
    config = AppConfig.model_validate({"device": "cpu", "generator": {"device": "cuda"}})
    assert config.device == "cpu"
    assert config.generator.device == "cuda"


def test_device_flow_keeps_the_rest_of_the_generator_section() -> None:
    config = AppConfig.model_validate({"device": "cpu", "generator": {"max_batch_size": 3, "model": "tiny"}})
    assert (config.generator.device, config.generator.max_batch_size, config.generator.model) == ("cpu", 3, "tiny")


def test_auto_device_leaves_the_generator_on_auto() -> None:
    assert AppConfig.model_validate({"device": "auto"}).generator.device == "auto"


@pytest.mark.parametrize(
    ("args", "loc"),
    [
        ({"jobs": {"max_attempts": 0}}, ("jobs", "max_attempts")),
        ({"jobs": {"max_attempts": 21}}, ("jobs", "max_attempts")),
        ({"jobs": {"max_concurrent": 0}}, ("jobs", "max_concurrent")),
        ({"jobs": {"lease_s": 0}}, ("jobs", "lease_s")),
        ({"generator": {"max_batch_size": 0}}, ("generator", "max_batch_size")),
        ({"generator": {"max_batch_size": 65}}, ("generator", "max_batch_size")),
        ({"generator": {"batch_wait_s": -0.1}}, ("generator", "batch_wait_s")),
        ({"generator": {"num_gpus_when_auto": 0}}, ("generator", "num_gpus_when_auto")),
        ({"generator": {"cpu_threads": 0}}, ("generator", "cpu_threads")),
        ({"composer": {"steps": 0}}, ("composer", "steps")),
        ({"composer": {"guidance": 31}}, ("composer", "guidance")),
        ({"cache": {"hot_asset_bytes": -1}}, ("cache", "hot_asset_bytes")),
        ({"device": "tpu"}, ("device",)),
        ({"generator": {"dtype": "float8"}}, ("generator", "dtype")),
    ],
)
def test_out_of_range_values_are_refused(args: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as exc:
        AppConfig.model_validate(args)
    assert [tuple(e["loc"]) for e in exc.value.errors()] == [loc]


@pytest.mark.parametrize(("args", "value"), [({"jobs": {"max_attempts": 1}}, 1), ({"jobs": {"max_attempts": 20}}, 20)])
def test_the_bounds_themselves_are_accepted(args: dict[str, Any], value: int) -> None:
    assert AppConfig.model_validate(args).jobs.max_attempts == value


def test_the_config_is_frozen() -> None:
    config = AppConfig.model_validate({})
    with pytest.raises(ValidationError):
        config.generator.max_batch_size = 8  # type: ignore[misc]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_shipped_yaml_args_validate(name: str) -> None:
    args = _application(name)["args"]
    config = AppConfig.model_validate(args)
    # Spot checks that the YAML's values arrived where they were written.
    assert config.device == args["device"]
    assert config.generator.model == args["generator"]["model"]
    assert config.composer.width == args["composer"]["width"]
    assert config.zmq_bridge is not None and config.zmq_bridge.enabled is args["zmq_bridge"]["enabled"]
    if args["device"] != "auto":
        assert config.generator.device == args["device"]


def test_serve_yaml_is_the_cpu_profile_and_serve_gpu_yaml_runs_on_cuda() -> None:
    cpu = AppConfig.model_validate(_application("serve.yaml")["args"])
    gpu = AppConfig.model_validate(_application("serve.gpu.yaml")["args"])
    assert gpu_profile(cpu, cluster_has_gpus=False) is False
    assert gpu.generator.device == "cuda"


# -- deployment_options and gpu_profile -------------------------------------------------------------------


@pytest.mark.parametrize("args", [{}, {"device": "auto"}, {"device": "cpu"}, BRIDGE_ON])
def test_the_cpu_profile_asks_for_no_gpu_anywhere(args: dict[str, Any]) -> None:
    config = AppConfig.model_validate(args)
    assert gpu_profile(config, cluster_has_gpus=False) is False
    options = deployment_options(config, cluster_has_gpus=False)
    assert all("num_gpus" not in actor for actor in _all_actor_options(options))


@pytest.mark.parametrize("cluster_has_gpus", [False, True])
def test_light_deployments_reserve_no_cpu_and_the_generator_one(cluster_has_gpus: bool) -> None:
    options = deployment_options(AppConfig.model_validate(BRIDGE_ON), cluster_has_gpus=cluster_has_gpus)
    for name in (*LIGHT, "ZmqBridge"):
        assert options[name]["ray_actor_options"]["num_cpus"] == 0, name
    assert options["Generator"]["ray_actor_options"]["num_cpus"] == 1


@pytest.mark.parametrize("share", [1.0, 0.5, 0.25, 2.0])
def test_auto_on_a_gpu_cluster_asks_the_configured_gpu_share(share: float) -> None:
    config = AppConfig.model_validate({"device": "auto", "generator": {"num_gpus_when_auto": share}})
    assert gpu_profile(config, cluster_has_gpus=True) is True
    options = deployment_options(config, cluster_has_gpus=True)
    assert options["Generator"]["ray_actor_options"]["num_gpus"] == share
    for name in LIGHT:
        assert "num_gpus" not in options[name]["ray_actor_options"], name


def test_the_default_gpu_share_is_one_whole_gpu() -> None:
    options = deployment_options(AppConfig.model_validate({}), cluster_has_gpus=True)
    assert options["Generator"]["ray_actor_options"]["num_gpus"] == 1.0


@pytest.mark.parametrize("args", [{"device": "cpu"}, {"generator": {"device": "cpu"}}])
def test_device_cpu_never_asks_for_a_gpu_even_on_a_gpu_cluster(args: dict[str, Any]) -> None:
    config = AppConfig.model_validate(args)
    assert gpu_profile(config, cluster_has_gpus=True) is False
    options = deployment_options(config, cluster_has_gpus=True)
    assert all("num_gpus" not in actor for actor in _all_actor_options(options))


def test_options_are_fresh_dicts_each_call() -> None:
    config = AppConfig.model_validate({})
    first = deployment_options(config, cluster_has_gpus=False)
    first["Generator"]["ray_actor_options"]["num_cpus"] = 99
    assert deployment_options(config, cluster_has_gpus=False)["Generator"]["ray_actor_options"]["num_cpus"] == 1


@pytest.mark.parametrize(
    ("args", "present"),
    [({}, False), (BRIDGE_OFF, False), (BRIDGE_ON, True), ({"zmq_bridge": {}}, True)],
    ids=["no-section", "disabled", "enabled", "enabled-by-default"],
)
def test_the_bridge_deployment_exists_only_when_set_and_enabled(args: dict[str, Any], present: bool) -> None:
    options = deployment_options(AppConfig.model_validate(args), cluster_has_gpus=False)
    expected = {"Ingress", "Composer", "Overlay", "Enhancer", "Generator"} | ({"ZmqBridge"} if present else set())
    assert set(options) == expected
    if present:
        assert options["ZmqBridge"]["num_replicas"] == 1


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cluster_has_gpus", [False, True])
def test_every_yaml_deployment_entry_names_a_deployment_the_builder_makes(name: str, cluster_has_gpus: bool) -> None:
    # Serve refuses an override for a deployment the application does not have.
    app = _application(name)
    config = AppConfig.model_validate(app["args"])
    made = set(deployment_options(config, cluster_has_gpus=cluster_has_gpus))
    listed = [entry["name"] for entry in app["deployments"]]
    assert len(listed) == len(set(listed)), f"{name} lists a deployment twice"
    assert set(listed) <= made, f"{name} overrides {set(listed) - made}, which the builder does not make"


def test_the_yaml_bridge_entry_would_be_refused_with_the_bridge_off() -> None:
    # serve.yaml's comment says: with the bridge off, remove the ZmqBridge entry too. Prove why.
    app = _application("serve.yaml")
    args = {**app["args"], "zmq_bridge": {**app["args"]["zmq_bridge"], "enabled": False}}
    made = set(deployment_options(AppConfig.model_validate(args), cluster_has_gpus=False))
    listed = {entry["name"] for entry in app["deployments"]}
    assert listed - made == {"ZmqBridge"}


def test_option_names_are_the_serve_deployment_names() -> None:
    # The options (and the YAML entries) are keyed by deployment name; each must be the name Serve knows.
    from deployments.composer import Composer
    from deployments.enhancer import Enhancer
    from deployments.generator import Generator
    from deployments.ingress import Ingress
    from deployments.overlay import Overlay
    from deployments.zmq_bridge import ZmqBridgeDeployment

    served = {d.name for d in (Composer, Enhancer, Generator, Ingress, Overlay, ZmqBridgeDeployment)}
    made = set(deployment_options(AppConfig.model_validate(BRIDGE_ON), cluster_has_gpus=True))
    assert made == served


# -- resolve_model_source ---------------------------------------------------------------------------------


def test_tiny_passes_through() -> None:
    assert resolve_model_source("tiny", Settings(sdxl_path=None)) == "tiny"


def test_env_without_the_variable_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIMNER_SDXL_PATH", raising=False)
    with pytest.raises(ValueError, match="LIMNER_SDXL_PATH"):
        resolve_model_source("env", Settings())
    with pytest.raises(ValueError, match="LIMNER_SDXL_PATH"):
        resolve_model_source("env", Settings(sdxl_path=""))


def test_env_reads_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "sdxl-base"
    folder.mkdir()
    monkeypatch.setenv("LIMNER_SDXL_PATH", str(folder))
    assert resolve_model_source("env", Settings()) == str(folder.resolve())


def test_a_missing_path_raises(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match="does not exist"):
        resolve_model_source(str(missing), Settings(sdxl_path=None))
    with pytest.raises(ValueError, match="does not exist"):
        resolve_model_source("env", Settings(sdxl_path=str(missing)))


def test_an_existing_relative_folder_resolves_to_its_absolute_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "models" / "sdxl").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    resolved = resolve_model_source("models/sdxl", Settings(sdxl_path=None))
    assert Path(resolved).is_absolute()
    assert resolved == str((tmp_path / "models" / "sdxl").resolve())


def test_a_checkpoint_file_and_a_home_relative_path_resolve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    checkpoint = tmp_path / "sdxl.safetensors"
    checkpoint.write_bytes(b"\0")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_model_source("~/sdxl.safetensors", Settings(sdxl_path=None)) == str(checkpoint.resolve())
    assert resolve_model_source("env", Settings(sdxl_path="~/sdxl.safetensors")) == str(checkpoint.resolve())


# -- generation limits: one config section, checked by the composer and the generator alike ---------------


def test_generator_limits_reach_the_composer_and_the_generator_through_the_builder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serve_app.app import build_app
    from serve_app.config import LimitsConfig

    monkeypatch.setenv("LIMNER_MODEL_CACHE", str(tmp_path))
    ingress = build_app({"generator": {"limits": {"max_steps": 12, "max_size": 1024}}})._bound_deployment
    composer, generator = ingress.init_args[2]._bound_deployment, ingress.init_args[3]._bound_deployment
    expected = LimitsConfig(max_steps=12, max_size=1024)
    assert composer.init_args[2] == expected
    assert generator.init_args[0].limits == expected


def test_the_composer_refuses_what_breaks_its_limits() -> None:
    import asyncio

    from deployments.composer import Composer
    from pipelines.errors import InputError
    from serve_app.config import ComposerConfig, LimitsConfig
    from serve_app.schemas import PartialRequest

    composer = Composer.func_or_class(ComposerConfig(width=256, height=256), "tiny", LimitsConfig(max_steps=10))
    with pytest.raises(InputError) as caught:
        asyncio.run(composer.compose(PartialRequest(prompt="p", steps=11)))
    assert caught.value.param == "steps"
    roomy = Composer.func_or_class(ComposerConfig(), "tiny", LimitsConfig(max_size=4096, max_pixels=4096 * 4096))
    composed = asyncio.run(roomy.compose(PartialRequest(prompt="p", width=3072, height=3072)))
    assert (composed.request.width, composed.request.height) == (3072, 3072)


def test_the_generator_loads_its_pipeline_with_its_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.sdxl
    from deployments.generator import _load
    from pipelines.request import GenerationLimits
    from serve_app.config import GeneratorConfig, LimitsConfig

    seen: dict[str, Any] = {}
    monkeypatch.setattr(pipelines.sdxl, "load_pipeline", lambda source, **kwargs: seen.update(kwargs))
    _load(GeneratorConfig(device="cpu", limits=LimitsConfig(max_steps=7)), "tiny", "/nowhere")
    assert seen["limits"] == GenerationLimits(max_steps=7)


def test_limits_with_min_above_max_are_refused() -> None:
    from serve_app.config import LimitsConfig

    with pytest.raises(ValidationError):
        LimitsConfig(min_size=512, max_size=256)


# -- secrets: URLs may embed credentials ------------------------------------------------------------------

SECRET = "hunter2"


def _secret_settings(tmp_path: Path, **urls: str) -> Settings:
    return Settings(data_dir=str(tmp_path), **urls)  # type: ignore[arg-type]


def test_settings_keep_urls_out_of_reprs_but_hand_them_to_their_readers(tmp_path: Path) -> None:
    import pickle

    from serve_app.services import database_url

    urls = {
        "database_url": f"postgresql+asyncpg://limner:{SECRET}@db/limner",
        "redis_url": f"redis://:{SECRET}@cache:6379/0",
        "store_url": f"s3://key:{SECRET}@bucket/assets",
    }
    settings = _secret_settings(tmp_path, **urls)
    for text in (repr(settings), str(settings), repr(settings.model_dump()), repr(AppConfig())):
        assert SECRET not in text
    assert database_url(settings) == urls["database_url"]
    assert settings.redis_url is not None and settings.redis_url.get_secret_value() == urls["redis_url"]
    # They still travel to the replica (Ray pickles init arguments), whole.
    back = pickle.loads(pickle.dumps(settings))
    assert back.store_url is not None and back.store_url.get_secret_value() == urls["store_url"]


def test_settings_read_secret_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMNER_STORE_URL", f"memory://u:{SECRET}@b/x")
    settings = Settings()
    assert settings.store_url is not None and settings.store_url.get_secret_value() == f"memory://u:{SECRET}@b/x"
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"s3://key:{SECRET}@bucket/path?token={SECRET}&region=eu", "s3://key:***@bucket/path?token=***&region=***"),
        (f"redis://:{SECRET}@h:6379/0", "redis://:***@h:6379/0"),
        (f"postgresql://u:{SECRET}@h/db?sslpassword={SECRET}", "postgresql://u:***@h/db?sslpassword=***"),
        ("rediss://user@h:6380", "rediss://user@h:6380"),
        ("/var/lib/limner/assets", "/var/lib/limner/assets"),
        ("sqlite+aiosqlite:////tmp/x/limner.db", "sqlite+aiosqlite:////tmp/x/limner.db"),
        (f"s3://key:se/{SECRET}@bucket/p", "s3://<redacted>"),  # an unescaped '/' in the password
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    from serve_app.services import redact_url

    assert redact_url(url) == shown


def test_open_services_logs_the_store_url_redacted(tmp_path: Path) -> None:
    import asyncio
    import logging

    from serve_app.services import open_services

    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("ray.serve.limner.services")
    handler, level = _Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    settings = _secret_settings(tmp_path, store_url=f"memory://user:{SECRET}@bucket/assets?token={SECRET}")

    async def _open_and_close() -> None:
        services = await open_services(AppConfig(), settings)
        await services.aclose()

    try:
        asyncio.run(_open_and_close())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [r.getMessage() for r in records]
    assert any("store=memory://user:***@bucket/assets?token=***" in line for line in lines), lines
    assert not any(SECRET in line for line in lines)


def test_the_edge_gives_the_kinds_the_generator_limits(tmp_path: Path) -> None:
    """A kind re-checks a request it changed (an img2img start, a depth map) against the same limits."""
    import asyncio

    from pipelines.request import GenerationLimits
    from serve_app.config import GeneratorConfig, LimitsConfig
    from serve_app.runtime import Handles, build_edge
    from serve_app.services import open_services

    config = AppConfig(generator=GeneratorConfig(limits=LimitsConfig(max_size=4096, max_pixels=4096 * 4096)))

    async def _nothing(*_: Any) -> Any:
        raise AssertionError("not called")

    async def _limits() -> GenerationLimits:
        services = await open_services(config, Settings(data_dir=str(tmp_path)))
        try:
            edge = build_edge(config, services, Handles(_nothing, _nothing, _nothing, _nothing))  # type: ignore[arg-type]
            return edge.jobs.stages.limits
        finally:
            await services.aclose()

    assert asyncio.run(_limits()) == GenerationLimits(max_size=4096, max_pixels=4096 * 4096)


def test_a_configured_backend_without_its_key_makes_build_app_raise_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from serve_app.app import build_app
    from serve_app.remote.stage import MissingKey

    monkeypatch.delenv("LIMNER_FAL_KEY", raising=False)
    monkeypatch.setenv("LIMNER_OPENAI_API_KEY", "sk-set")
    with pytest.raises(MissingKey, match="LIMNER_FAL_KEY") as caught:
        build_app({"remote": {"fal": {}, "openai": {}}})
    assert "LIMNER_OPENAI_API_KEY" not in str(caught.value)  # only what is missing is named


def test_the_remote_deployment_is_in_the_graph_only_when_a_backend_is_configured() -> None:
    assert "Remote" not in deployment_options(AppConfig(), cluster_has_gpus=False)
    configured = AppConfig.model_validate({"remote": {"runware": {"price_usd": 0.002}}})
    assert deployment_options(configured, cluster_has_gpus=False)["Remote"] == {"ray_actor_options": {"num_cpus": 0}}


def test_routing_must_name_configured_backends() -> None:
    with pytest.raises(ValidationError, match=r"routing\.default"):
        AppConfig.model_validate({"remote": {"routing": {"default": "fal"}}})  # fal is not configured
    with pytest.raises(ValidationError, match="unknown backends"):
        AppConfig.model_validate({"remote": {"routing": {"order": ["local", "dalle"]}}})
    assert (
        AppConfig.model_validate({"remote": {"fal": {}, "routing": {"default": "fal"}}}).remote.routing.default == "fal"
    )


def test_the_bridge_may_render_through_a_configured_backend_only() -> None:
    with pytest.raises(ValidationError, match=r"zmq_bridge\.backend"):
        AppConfig.model_validate({"zmq_bridge": {"backend": "openai"}})
    config = AppConfig.model_validate({"remote": {"openai": {}}, "zmq_bridge": {"backend": "openai"}})
    assert config.zmq_bridge is not None and config.zmq_bridge.backend == "openai"
