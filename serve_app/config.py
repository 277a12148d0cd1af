"""Configuration: the app args of configs/serve.yaml, and secrets from the environment.

One path: ``configs/serve.yaml`` → ``applications[].args`` → :class:`AppConfig` (pydantic, unknown keys
rejected) → :func:`serve_app.app.build_app` binds each deployment with its own section. Per-deployment Ray
options (replicas, ``num_gpus``, ``num_cpus``, ``max_ongoing_requests``) stay in the YAML ``deployments:``
list. Paths and secrets come from the environment through :class:`Settings`, never from the YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serve_app.experimance.config import BridgeConfig

if TYPE_CHECKING:
    from pipelines.overlay.spec import OverlayLimits
    from pipelines.request import GenerationLimits

__all__ = [
    "AppConfig",
    "AuthConfig",
    "CacheConfig",
    "ComposerConfig",
    "EnhancerConfig",
    "FaceRestorerConfig",
    "GeneratorConfig",
    "IngressConfig",
    "JobsConfig",
    "LimitsConfig",
    "MapsConfig",
    "ModerationConfig",
    "OverlayConfig",
    "QuotaConfig",
    "RetentionConfig",
    "Settings",
    "SizePreset",
    "ThemesConfig",
    "ZmqBridgeSection",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsConfig(_Section):
    """Bounds every generation request is checked against before any compute (at acceptance by the composer,
    again by the generator): :class:`pipelines.request.GenerationLimits`."""

    min_size: int = Field(64, ge=8, le=16384, description="Smallest width or height in pixels.")
    max_size: int = Field(2048, ge=8, le=16384, description="Largest width or height in pixels.")
    max_pixels: int = Field(2048 * 2048, ge=64, le=16384 * 16384, description="Largest width * height.")
    max_steps: int = Field(150, ge=1, le=1000, description="Most denoising steps.")
    max_guidance: float = Field(30.0, ge=0.0, le=100.0, description="Largest classifier-free guidance scale.")
    max_prompt_chars: int = Field(2000, ge=1, le=100_000, description="Longest prompt or negative prompt.")
    max_control_scale: float = Field(2.0, ge=0.0, le=10.0, description="Largest ControlNet conditioning scale.")

    @model_validator(mode="after")
    def _ordered(self) -> LimitsConfig:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size={self.min_size} is above max_size={self.max_size}")
        return self

    def generation_limits(self) -> GenerationLimits:
        """The pure :class:`GenerationLimits` the pipelines check against."""
        from pipelines.request import GenerationLimits

        return GenerationLimits(**self.model_dump())


class GeneratorConfig(_Section):
    """The generator deployment: which model, where it runs, how it batches."""

    model: str = Field(
        "tiny",
        description="'tiny' (built offline), 'env' (the path in LIMNER_SDXL_PATH), a diffusers folder or a "
        "single-file .safetensors checkpoint.",
    )
    model_name: str | None = Field(None, description="Name reported in results; defaults to the model's.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses CUDA when the replica sees a GPU, the CPU otherwise."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="'auto' is float16 on CUDA and float32 on the CPU."
    )
    controlnet: str | None = Field(
        None, description="Depth ControlNet: 'tiny' (built offline), a local diffusers folder, or None for none."
    )
    attention: Literal["sdpa", "xformers"] = Field(
        "sdpa", description="PyTorch scaled-dot-product attention, or xformers when installed (gpu extra)."
    )
    cpu_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="torch intra-op threads on the CPU. None keeps what Ray sets (num_cpus of the replica).",
    )
    max_batch_size: int = Field(4, ge=1, le=64, description="Most requests in one diffusers call.")
    batch_wait_s: float = Field(
        0.0,
        ge=0.0,
        le=5.0,
        description="How long an idle replica waits for company before starting a lone request. 0 starts "
        "at once; requests that arrive while it is busy are batched anyway.",
    )
    warmup_sizes: list[tuple[int, int]] = Field(
        default_factory=lambda: [(64, 64)],
        description="(width, height) sizes generated once at start-up, before the replica reports healthy.",
    )
    num_gpus_when_auto: float = Field(
        1.0,
        gt=0.0,
        le=8.0,
        description="GPU share a generator replica asks for when device is 'auto' and the cluster has GPUs "
        "and the YAML gives no ray_actor_options of its own.",
    )
    limits: LimitsConfig = Field(
        default_factory=LimitsConfig,
        description="Request bounds of this model: the generator checks them, and the composer refuses what "
        "breaks them at acceptance (the builder passes it this section).",
    )


class SizePreset(_Section):
    """A named output size."""

    width: int = Field(..., description="Width in pixels, a multiple of 8.")
    height: int = Field(..., description="Height in pixels, a multiple of 8.")


class ComposerConfig(_Section):
    """Defaults that turn a partial request into a full generation request."""

    width: int = Field(1024, description="Default width when a request names no size.")
    height: int = Field(1024, description="Default height when a request names no size.")
    steps: int = Field(30, ge=1, le=150, description="Default denoising steps.")
    guidance: float = Field(5.0, ge=0.0, le=30.0, description="Default guidance scale.")
    scheduler: str = Field("euler", description="Default scheduler name.")
    negative_prompt: str = Field(
        "blurry, low quality, watermark, text, signature, jpeg artifacts, deformed",
        description="Negative prompt used when a request gives none.",
    )
    base_pixels: int = Field(
        1024 * 1024, description="Pixel budget an aspect ratio is fitted to (the model's native area)."
    )
    presets: dict[str, SizePreset] = Field(
        default_factory=lambda: {
            "square": SizePreset(width=1024, height=1024),
            "portrait": SizePreset(width=832, height=1216),
            "landscape": SizePreset(width=1216, height=832),
            "wide": SizePreset(width=1344, height=768),
            "tall": SizePreset(width=768, height=1344),
        },
        description="Named sizes a request can ask for with 'size'.",
    )


class IngressConfig(_Section):
    """The HTTP ingress."""

    ready_cache_s: float = Field(
        5.0, ge=0.0, description="How long a successful readiness probe of the generator is trusted."
    )
    waiter_poll_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Waiters (POST /generate, ?wait=, the SSE stream) wake on job events; they read the database "
        "only after this many seconds without one (events from a replica this bus does not reach), and no more "
        "often than this while the event bus fails.",
    )
    sse_max_s: float = Field(
        3600.0,
        gt=0,
        description="Longest life of one SSE stream; it then ends with an `event: timeout` (the client resumes "
        "with Last-Event-ID), so a job that never finishes cannot hold a connection forever.",
    )
    sse_ping_s: float = Field(15.0, gt=0, description="Seconds between SSE keep-alive comments on an idle stream.")
    max_body_bytes: int = Field(
        24 * 2**20,
        ge=1024,
        le=1024 * 2**20,
        description="Longest request body in bytes; a longer one is refused with 413 before it is read whole. "
        "JSON bodies today are a few KiB; 24 MiB leaves room for an uploaded image (a 2048x2048 RGB PNG, even "
        "incompressible, base64 in JSON, is about 17 MB).",
    )
    max_image_pixels: int = Field(
        8192 * 8192,
        ge=64 * 64,
        description="Largest uploaded or imported image, in pixels, read from its header before it is decoded: a "
        "decompression bomb (a small file announcing a huge image) is a 422, never an out-of-memory.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Browser origins allowed to call the API (a Foundry VTT module runs in the browser), e.g. "
        '"http://localhost:30000"; empty: no CORS headers at all.',
    )
    signed_url_ttl_s: float = Field(
        3600.0,
        gt=0,
        le=7 * 86400,
        description="How long an OpenAI-compatible `response_format: url` link works (signed with LIMNER_URL_SECRET).",
    )


class JobsConfig(_Section):
    """Durable jobs: how the dispatcher claims, runs, retries and bounds them."""

    lease_s: float = Field(30.0, gt=0, description="A claimed job's lease; a runner that dies loses it after this.")
    heartbeat_s: float = Field(5.0, gt=0, description="How often a running job's lease is extended.")
    poll_interval_s: float = Field(0.2, gt=0, description="How often the dispatcher looks for runnable jobs.")
    max_concurrent: int = Field(
        16, ge=1, description="Jobs running at once per dispatcher (about what the generator replicas take)."
    )
    max_queued: int = Field(1000, ge=1, description="Queued jobs beyond which new ones get 503 with Retry-After.")
    max_attempts: int = Field(3, ge=1, le=20, description="Attempts before a transiently failing job is dead.")
    backoff_base_s: float = Field(0.5, gt=0, description="First retry delay; doubles each attempt, full jitter.")
    backoff_cap_s: float = Field(30.0, gt=0, description="Longest retry delay.")
    retry_after_s: int = Field(5, ge=1, description="Retry-After seconds sent with a 503 when the queue is full.")
    generate_timeout_s: float = Field(300.0, gt=0, description="How long POST /generate waits for its job.")
    http_priority: int = Field(0, description="Priority of jobs from POST /jobs (higher runs first).")
    generate_priority: int = Field(10, description="Priority of POST /generate, whose client is waiting.")
    max_client_priority: int = Field(
        40,
        ge=-100,
        le=100,
        description="Highest priority a client may ask for on POST /jobs; keep it below zmq_bridge.priority so "
        "no HTTP client outranks the installation.",
    )
    idempotency_ttl_s: float = Field(
        24 * 3600.0,
        gt=0,
        description="How long an Idempotency-Key names its job; after this the same key makes a new job.",
    )


class WebhooksConfig(_Section):
    """Webhooks (serve_app/webhooks/): on when ``LIMNER_WEBHOOK_SECRET`` (``whsec_`` + base64) is set."""

    allow_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Hosts called even when they resolve inside the network (loopback, private): tests, or a "
        "receiver on the same cluster. Empty: none.",
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="One delivery try's time limit.")
    max_attempts: int = Field(10, ge=1, le=100, description="Tries before a message is marked failed.")
    backoff_base_s: float = Field(1.0, gt=0, description="First retry delay ceiling (full jitter, doubling).")
    backoff_cap_s: float = Field(3600.0, gt=0, description="Longest retry delay.")
    poll_s: float = Field(0.5, gt=0, le=60, description="How often the outbox is read.")


class QuotaConfig(_Section):
    """What one API key may do (``auth.limits``; a key's own ``limits`` override it field by field). None: no
    limit. Requests are counted per key and route group (the scope a route needs: generate, read, write,
    admin); images and concurrent jobs per tenant."""

    generate_per_min: int | None = Field(60, ge=1, description="Requests per minute to routes that make images.")
    read_per_min: int | None = Field(1200, ge=1, description="Requests per minute to routes that read.")
    write_per_min: int | None = Field(120, ge=1, description="Requests per minute that delete or write themes.")
    admin_per_min: int | None = Field(600, ge=1, description="Requests per minute to the admin routes.")
    images_per_day: int | None = Field(2000, ge=1, description="Jobs accepted per tenant per day (a rolling day).")
    concurrent_jobs: int | None = Field(
        32, ge=1, description="A tenant's jobs queued or running at once; one more is a 429 until one ends."
    )
    max_priority: int | None = Field(
        None, ge=-100, le=100, description="Highest job priority the key may ask for; None: jobs.max_client_priority."
    )


class AuthConfig(_Section):
    """API keys and scopes (serve_app/auth; docs/AUTH.md)."""

    mode: Literal["auto", "keys", "off"] = Field(
        "auto",
        description="keys: every route but /healthz, /readyz and assets needs a key; off: none does. auto: off when "
        "the HTTP proxy listens on a loopback address only, keys otherwise.",
    )
    allow_off_on_network: bool = Field(
        False, description="Start with mode off although the proxy listens beyond loopback (refused otherwise)."
    )
    key_cache_s: float = Field(
        5.0, ge=0, le=300, description="Seconds a checked key is trusted without the database (a revocation lag)."
    )
    limits: QuotaConfig = Field(default_factory=QuotaConfig)
    bridge_tenant: str = Field(
        "experimance", min_length=1, max_length=64, description="The tenant of the Experimance bridge's jobs."
    )


class HubConfig(_Section):
    """The message hub: domain events on a Redis Stream (serve_app/events/hub.py, docs/EVENTS.md)."""

    enabled: bool = Field(True, description="Publish domain events when LIMNER_REDIS_URL is set.")
    stream: str = Field("limner:events", min_length=1, max_length=200, description="The stream's key.")
    maxlen: int = Field(100_000, ge=100, description="About how many events the stream keeps (approximate).")


class CacheConfig(_Section):
    """Result cache and hot-asset byte cache."""

    result_ttl_s: float | None = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="How long a request hash maps to its image in the result cache (seconds); None: forever.",
    )
    hot_asset_bytes: int = Field(64 * 2**20, ge=0, description="Byte bound of the hot-asset cache.")
    hot_asset_max_item_bytes: int = Field(4 * 2**20, ge=0, description="Largest asset the hot cache keeps.")
    redis_max_connections: int = Field(
        32,
        ge=2,
        le=10_000,
        description="Redis connections per process, shared by the result cache, the hot-asset cache and the event "
        "bus (whose subscriptions all share one of them); a caller waits for a free one rather than opening more.",
    )
    warm: list[dict[str, object]] = Field(
        default_factory=list,
        description="Seeded generate requests (as POST /generate bodies) queued at start-up so they are cached.",
    )


class RetentionConfig(_Section):
    """What the service forgets, and when: run by the janitor on a schedule and by ``make gc``.

    A soft-deleted image's asset URL keeps serving its bytes during the grace period (assets are content
    addressed: the same bytes may belong to other images, and CDNs cache them as immutable); once the image
    row is purged and nothing else references the blob, garbage collection removes it and the URL answers 404.
    """

    enabled: bool = Field(True, description="Run the janitor in the service (make gc runs regardless).")
    interval_s: float = Field(3600.0, gt=0, description="Seconds between janitor runs.")
    jobs_days: float | None = Field(
        30.0,
        gt=0,
        description="Finished jobs (and their events) are deleted this many days after they ended; None keeps them.",
    )
    deleted_images_days: float | None = Field(
        7.0, gt=0, description="Soft-deleted images are purged this many days after deletion; None keeps them."
    )
    collect_blobs: bool = Field(
        True, description="After pruning, the janitor removes asset blobs nothing references any more."
    )
    blob_grace_s: float = Field(
        3600.0,
        ge=0,
        description="Unreferenced blobs younger than this are kept (a running job may just have written one).",
    )
    batch_size: int = Field(1000, ge=1, le=100_000, description="Rows deleted per transaction (short write locks).")


class ModerationConfig(_Section):
    """The deployment's content policy (pipelines/moderation.py): offline word and phrase lists by category.

    A theme can allow or block categories on top (a children's table blocks ``gore``); the always-on combined
    rules (minors with sexual terms) apply whatever is configured.
    """

    enabled: bool = Field(True, description="Check every request's text; off skips even the always-on rules.")
    policy_path: str | None = Field(None, description="A policy YAML file; None: the packaged default policy.")
    block: list[str] | None = Field(None, description="Categories refused; None: the policy's default_block.")
    allow: list[str] = Field(default_factory=list, description="Categories permitted although blocked.")


class ThemesConfig(_Section):
    """Themes: which built-in packs are stored at start, and how deep inheritance may go."""

    packs: list[str] = Field(default_factory=lambda: ["core", "experimance"], description="Built-in packs.")
    max_depth: int = Field(8, ge=1, le=32, description="Longest parent chain.")
    recent_jobs_days: float = Field(
        7.0, ge=0, description="A theme a job used this recently is deleted only with force=true."
    )


class OverlayConfig(_Section):
    """The overlay stage (pipelines/overlay/): bounds on one overlay and the default cell rule of templates."""

    max_pixels: int = Field(4096 * 4096, ge=64 * 64, description="Largest map (cols x cell_px by rows x cell_px).")
    max_cells: int = Field(200 * 200, ge=1, description="Most cells in a grid.")
    max_items: int = Field(500, ge=1, description="Most tokens, templates, paths, movement queries and markers.")
    max_waypoints: int = Field(100, ge=2, description="Most waypoints in one path.")
    max_path_cells: int = Field(
        2000, ge=1, description="Longest path, summing the straight distances between its waypoints, in cells."
    )
    max_distance_ft: float = Field(1000.0, gt=0, description="Longest template distance, aura or reach.")
    max_speed_ft: float = Field(500.0, gt=0, description="Fastest movement query.")
    default_rule: Literal["center", "any", "half", "token"] = Field(
        "center", description="Cell rule of templates that name none (Foundry's centre rule by default)."
    )

    def limits(self) -> OverlayLimits:
        """The bounds as the pure :class:`pipelines.overlay.spec.OverlayLimits`."""
        from pipelines.overlay.spec import OverlayLimits

        return OverlayLimits(**self.model_dump(exclude={"default_rule"}))


class MapsConfig(_Section):
    """Tactical maps: how the background is generated from the terrain's layout sketch."""

    base_pixels: int | None = Field(
        None, ge=64 * 64, description="Pixels the background is generated at; None: composer.base_pixels."
    )
    layout_strength: float = Field(
        0.9, gt=0, le=1, description="img2img strength from the colour-coded layout sketch (1 ignores the sketch)."
    )
    depth_control: bool = Field(
        True, description="Condition on the depth-like map through the generator's ControlNet, when it has one."
    )
    control_scale: float = Field(0.6, ge=0, le=2, description="ControlNet conditioning scale for the depth map.")


class FaceRestorerConfig(_Section):
    """A GFPGAN / CodeFormer-style face restorer (GPU nodes, spandrel in the ``gpu`` extra) from a local file."""

    path: str = Field(..., description="Local weights file (.pth / .safetensors).")
    license: str = Field(
        ...,
        description="The weights' licence as the user read it: Apache-2.0 (GFPGAN), "
        "S-Lab-1.0 (CodeFormer, non-commercial)...",
    )
    acknowledge_non_commercial: bool = Field(
        False, description="Required for a non-commercial licence (CodeFormer's S-Lab 1.0): this use is not commercial."
    )

    @model_validator(mode="after")
    def _licence_acknowledged(self) -> FaceRestorerConfig:
        from pipelines.enhance.restore import is_non_commercial

        if is_non_commercial(self.license) and not self.acknowledge_non_commercial:
            raise ValueError(
                f"face_restorer licence {self.license!r} is non-commercial: set acknowledge_non_commercial: true "
                "to confirm this deployment is not commercial use, or use a commercially licensed restorer (GFPGAN)"
            )
        return self


class EnhancerConfig(_Section):
    """The enhancer stage: upscaling, face enhancement and restyling (pipelines/enhance/)."""

    max_pixels: int = Field(4096 * 4096, ge=64 * 64, description="Largest upscale result, width x height.")
    native_size: int | None = Field(
        None, ge=64, le=4096, description="Side of a repaint tile or face crop; None: the composer's width."
    )
    model_path: str | None = Field(
        None,
        description="ESRGAN-family weights for method 'model' (loaded through spandrel, gpu extra); None: the "
        "built-in compact network with fixed random weights (the CPU profile: it exercises the path, not quality).",
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="Where the model upscaler runs.")
    face_detector: Literal["auto", "mediapipe", "haar"] = Field(
        "auto", description="auto: the best detector that imports (mediapipe's BlazeFace, else OpenCV's Haar)."
    )
    face_restorer: FaceRestorerConfig | None = None
    structure: Literal["edges", "luminance"] = Field(
        "edges", description="What restyle's keep_structure conditions the depth ControlNet on."
    )


REMOTE_BACKENDS = ("getimg", "fal", "openai", "runware")
"""The paid APIs limner can draw through (pipelines/remote/)."""


class RemoteBackendConfig(_Section):
    """One paid API. Its key comes from the environment only (``LIMNER_GETIMG_API_KEY``, ``LIMNER_FAL_KEY``,
    ``LIMNER_OPENAI_API_KEY``, ``LIMNER_RUNWARE_API_KEY``), never from this file."""

    base_url: str | None = Field(
        None, description="The service root the official clients use; None: the public API (tests point it at a fake)."
    )
    model: str | None = Field(None, description="The API's model id; None: the backend's default.")
    timeout_s: float = Field(60.0, gt=0, le=900, description="Timeout of one HTTP attempt.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries on 408, 409, 429 and 5xx (with backoff).")
    max_concurrent: int = Field(4, ge=1, le=256, description="Generations in flight at this API at once.")
    rate_per_s: float | None = Field(None, gt=0, description="Outbound HTTP requests per second; None: no limit.")
    price_usd: float | None = Field(None, ge=0, description="Cost per image when the API reports none.")
    daily_budget_usd: float | None = Field(
        None, ge=0, description="Once this much is spent today (UTC), new work is refused (402) or routed past it."
    )
    breaker_failures: int = Field(5, ge=1, description="Consecutive failed calls that open the circuit.")
    breaker_reset_s: float = Field(30.0, gt=0, description="How long the circuit stays open before a trial call.")


class RoutingConfig(_Section):
    """Which backend a request runs on when it names none, and what ``auto`` tries."""

    default: str = Field("local", description="local | auto | a configured backend's name.")
    order: list[str] = Field(
        default_factory=lambda: ["local", *REMOTE_BACKENDS],
        description="What auto tries, in order (unconfigured names are skipped).",
    )
    max_local_wait_s: float = Field(
        30.0, ge=0, description="auto takes the local generator while its estimated queue wait is at most this."
    )


class RemoteConfig(_Section):
    """The paid APIs (``remote:``): a backend is configured when its entry is present."""

    getimg: RemoteBackendConfig | None = None
    fal: RemoteBackendConfig | None = None
    openai: RemoteBackendConfig | None = None
    runware: RemoteBackendConfig | None = None
    routing: RoutingConfig = Field(default_factory=RoutingConfig)

    @property
    def configured(self) -> dict[str, RemoteBackendConfig]:
        """The configured backends by name, in :data:`REMOTE_BACKENDS` order."""
        return {name: entry for name in REMOTE_BACKENDS if (entry := getattr(self, name)) is not None}

    @model_validator(mode="after")
    def _routing_names_exist(self) -> RemoteConfig:
        allowed = {"local", "auto", *self.configured}
        if self.routing.default not in allowed:
            raise ValueError(f"remote.routing.default {self.routing.default!r} is not one of {sorted(allowed)}")
        unknown = [n for n in self.routing.order if n not in ("local", *REMOTE_BACKENDS)]
        if unknown:
            raise ValueError(f"remote.routing.order names unknown backends {unknown}")
        return self


class ZmqBridgeSection(BridgeConfig):
    """The Experimance bridge: every :class:`BridgeConfig` setting, plus how bridge jobs are made."""

    enabled: bool = Field(True, description="Run the bridge. Connecting does no harm while no core listens.")
    output_dir: Path | None = Field(  # type: ignore[assignment]
        None, description="Where images for the core are written; default: <LIMNER_DATA_DIR>/experimance."
    )
    max_render_side: int | None = Field(
        None,
        ge=64,
        description="Generate at most this many pixels on the longer side, then resize to the requested size "
        "(keeps the CPU profile inside the installation's timeout); None generates at the requested size.",
    )
    priority: int = Field(50, description="Job priority of bridge requests (HTTP jobs default to 0).")
    depth_controlnet: bool = Field(
        False,
        description="Condition on depth maps with the generator's ControlNet (needs generator.controlnet) "
        "instead of starting image-to-image from them.",
    )
    control_scale: float = Field(1.0, ge=0.0, le=2.0, description="ControlNet conditioning scale for depth maps.")
    backend: str | None = Field(
        None,
        max_length=32,
        description="Where bridge requests are drawn: local, auto or a configured paid API (the installation's own "
        "server offers FAL and OpenAI); None: remote.routing.default. A failure still answers by the fallback rules.",
    )

    def bridge_config(self, data_dir: str) -> BridgeConfig:
        """The plain :class:`BridgeConfig`, with the output directory resolved."""
        fields = self.model_dump(
            exclude={
                "enabled",
                "output_dir",
                "max_render_side",
                "priority",
                "depth_controlnet",
                "control_scale",
                "backend",
            }
        )
        output = self.output_dir or Path(data_dir).expanduser() / "experimance"
        return BridgeConfig(**fields, output_dir=output)


class AppConfig(_Section):
    """The whole application: ``applications[].args`` of configs/serve.yaml."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="'auto' selects the GPU profile (cuda, float16) when the cluster has GPUs, the CPU "
        "profile otherwise. Overrides generator.device unless that is set explicitly.",
    )
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    composer: ComposerConfig = Field(default_factory=ComposerConfig)
    ingress: IngressConfig = Field(default_factory=IngressConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    hub: HubConfig = Field(default_factory=HubConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    themes: ThemesConfig = Field(default_factory=ThemesConfig)
    overlay: OverlayConfig = Field(default_factory=OverlayConfig)
    maps: MapsConfig = Field(default_factory=MapsConfig)
    enhancer: EnhancerConfig = Field(default_factory=EnhancerConfig)
    remote: RemoteConfig = Field(default_factory=RemoteConfig)
    zmq_bridge: ZmqBridgeSection | None = Field(None, description="The Experimance ZMQ bridge; None: not deployed.")

    @model_validator(mode="after")
    def _bridge_backend_exists(self) -> AppConfig:
        backend = self.zmq_bridge.backend if self.zmq_bridge is not None else None
        allowed = {"local", "auto", *self.remote.configured}
        if backend is not None and backend not in allowed:
            raise ValueError(f"zmq_bridge.backend {backend!r} is not one of {sorted(allowed)}")
        return self

    @model_validator(mode="after")
    def _device_flows_down(self) -> AppConfig:
        if self.generator.device == "auto" and self.device != "auto":
            object.__setattr__(self, "generator", self.generator.model_copy(update={"device": self.device}))
        return self


class Settings(BaseSettings):
    """Paths and secrets, read from ``LIMNER_*`` environment variables when the app is built."""

    model_config = SettingsConfigDict(env_prefix="LIMNER_", extra="ignore")

    sdxl_path: str | None = Field(None, description="Local SDXL diffusers folder or .safetensors file.")
    data_dir: str = Field(
        "~/.local/share/limner",
        description="Where the default SQLite database and asset folder live (LIMNER_DATA_DIR).",
    )
    # The URLs may embed credentials: SecretStr keeps them out of reprs, logs and the Ray dashboard (the
    # settings travel as the ingress's init arguments). Read them with .get_secret_value().
    database_url: SecretStr | None = Field(None, description="SQLAlchemy URL; default: SQLite in data_dir.")
    redis_url: SecretStr | None = Field(None, description="Redis for the result cache and job events across replicas.")
    webhook_secret: SecretStr | None = Field(
        None, description="Signs webhook deliveries (whsec_ + base64 of 24+ random bytes); unset: webhooks off."
    )
    store_url: SecretStr | None = Field(None, description="fsspec URL of the asset store; default: data_dir/assets.")
    public_base_url: str | None = Field(None, description="CDN base URL used in asset links instead of /api/v2/assets.")
    url_secret: SecretStr | None = Field(
        None,
        description="Signs the OpenAI-compatible API's image URLs (any long random string, the same on every replica); "
        "unset: a random key per process, so links stop working on restart and on other replicas.",
    )
    model_cache: str = Field(
        "~/.cache/limner/models", description="Where the tiny model is built (LIMNER_MODEL_CACHE)."
    )
