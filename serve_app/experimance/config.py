"""The bridge's configuration: plain pydantic, so :mod:`serve_app.config` can embed it without importing zmq."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve_app.experimance.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_PROMPT_CHARS,
    DEFAULT_MAX_SIZE,
    SchemaVariant,
)

__all__ = ["BridgeConfig", "FallbackConfig", "OutputRetention"]


class FallbackConfig(BaseModel):
    """How a failed or timed-out request is still answered."""

    model_config = ConfigDict(extra="forbid")

    use_previous: bool = Field(
        True, description="Answer with the newest image of the same era and biome under output_dir, if any."
    )
    color: tuple[int, int, int] = Field(
        (24, 24, 24), description="RGB of the neutral image used when there is no previous image."
    )


class OutputRetention(BaseModel):
    """Which of the bridge's own output files are removed, per pool (an era/biome folder, the root, ``fallback/``).

    Only files the bridge wrote (``limner_*``) are ever removed. Always kept, whatever the limits: the file
    ``latest.<ext>`` points at, the newest image of each pool and the image each era/biome fallback remembers
    (the fallback needs them), and files younger than ``min_age_s`` (a reply may still be on its way).
    """

    model_config = ConfigDict(extra="forbid")

    max_files: int | None = Field(
        200, ge=1, description="Keep at most this many bridge images per pool (the newest); None: no count limit."
    )
    max_age_hours: float | None = Field(
        None, gt=0, description="Remove bridge images older than this many hours; None: no age limit."
    )
    min_age_s: float = Field(
        300.0, ge=0, description="Never remove an image younger than this (the core or display may still read it)."
    )
    interval_s: float = Field(600.0, gt=0, description="How often the bridge applies the policy (also once at start).")


class BridgeConfig(BaseModel):
    """The bridge's configuration (the ``zmq_bridge`` section of the app config)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("localhost", description="Host of the installation's core, which binds both ports.")
    request_port: int = Field(5564, ge=1, le=65535, description="The core's PUSH (bind); the bridge connects PULL.")
    result_port: int = Field(5565, ge=1, le=65535, description="The core's PULL (bind); the bridge connects PUSH.")
    schema_variant: SchemaVariant = Field(
        "experimance", description="The installation's PROJECT_ENV: experimance (era/biome), fire or base."
    )
    output_dir: Path = Field(
        description="Where images are written (the installation's cache_dir); relative paths resolve at start."
    )
    image_format: Literal["jpeg", "png"] = Field("jpeg", description="Format of the images written.")
    jpeg_quality: int = Field(92, ge=1, le=100, description="JPEG quality.")
    timeout_s: float = Field(12.0, gt=0, description="Per-request time limit, queue time included.")
    max_concurrent_renders: int = Field(1, ge=1, description="Renders running at once; replies stay in order.")
    max_pending: int = Field(
        1000, ge=1, description="Unanswered requests held; past this a request is answered by fallback at once."
    )
    max_frame_bytes: int = Field(
        DEFAULT_MAX_FRAME_BYTES, ge=1024, description="Largest frame accepted; a larger one is counted and dropped."
    )
    max_message_bytes: int | None = Field(
        None,
        ge=1024,
        description="ZMQ_MAXMSGSIZE on the PULL: a larger message is never read into memory; ZMQ drops the "
        "connection (with whatever the core had queued on it) and the bridge reconnects. At least "
        "max_frame_bytes; None: max(2 * max_frame_bytes, max_frame_bytes + 1 MiB), so a frame a little over "
        "max_frame_bytes is still counted and dropped without losing the connection.",
    )
    receive_hwm: int = Field(
        16,
        ge=1,
        description="ZMQ_RCVHWM on the PULL: messages ZMQ queues for the bridge before it stops reading from "
        "the core (at most receive_hwm * max_message_bytes held); the core paces itself at one request per 2 s.",
    )
    max_prompt_chars: int = Field(
        DEFAULT_MAX_PROMPT_CHARS,
        ge=1,
        description="Longest prompt or negative_prompt accepted (the generator's limit); a longer one is "
        "counted and dropped as invalid_field.",
    )
    max_size: int = Field(DEFAULT_MAX_SIZE, ge=64, description="Largest requested width or height accepted.")
    max_image_bytes: int = Field(DEFAULT_MAX_IMAGE_BYTES, ge=1024, description="Largest encoded conditioning image.")
    max_image_pixels: int = Field(DEFAULT_MAX_IMAGE_PIXELS, ge=64 * 64, description="Largest conditioning image.")
    allowed_dirs: list[Path] = Field(
        default_factory=list, description="Directories a depth_map/reference_image path may point into."
    )
    depth_strength: float = Field(0.8, gt=0, le=1, description="img2img strength from a depth map.")
    reference_strength: float = Field(
        0.6, gt=0, le=1, description="img2img strength from a reference image (a fire request's strength wins)."
    )
    styles_enabled: bool = Field(True, description="Apply the built-in era/biome style pack.")
    latest_symlink: bool = Field(True, description="Re-point output_dir/latest.<ext> at each image sent.")
    health_file: Path | None = Field(None, description="Health file in the installation's format; None: none.")
    health_service_name: str = Field("image_server", description="service_name written in the health file.")
    health_interval_s: float = Field(10.0, gt=0, description="How often the health file is refreshed.")
    fallback: FallbackConfig = Field(default_factory=FallbackConfig, description="Failure and timeout answers.")
    max_concurrent_fallbacks: int = Field(
        2, ge=1, description="Fallback images made at once (each decodes and re-encodes an image at full size)."
    )
    retention: OutputRetention = Field(
        default_factory=OutputRetention, description="Which old images the bridge removes from output_dir."
    )
    dedupe_window: int = Field(10_000, ge=1, description="Recent request ids remembered to refuse duplicates.")
    send_timeout_s: float = Field(10.0, gt=0, description="How long a reply may wait for the result socket.")
    linger_ms: int = Field(500, ge=0, description="ZMQ_LINGER: how long unsent replies may delay stop().")
    reconnect_ivl_ms: int = Field(100, ge=1, description="ZMQ_RECONNECT_IVL.")
    reconnect_ivl_max_ms: int = Field(0, ge=0, description="ZMQ_RECONNECT_IVL_MAX (0: no back-off).")
    heartbeat_ivl_ms: int = Field(2000, ge=0, description="ZMTP heartbeat interval (0: off).")
    heartbeat_timeout_ms: int = Field(6000, ge=0, description="Silence after which a connection is re-made.")

    @model_validator(mode="after")
    def _message_limit_covers_frames(self) -> BridgeConfig:
        if self.max_message_bytes is not None and self.max_message_bytes < self.max_frame_bytes:
            raise ValueError(
                f"max_message_bytes={self.max_message_bytes} must be at least max_frame_bytes={self.max_frame_bytes}"
            )
        return self

    @property
    def zmq_max_message_bytes(self) -> int:
        """The ZMQ_MAXMSGSIZE set on the PULL (``max_message_bytes`` or its default)."""
        if self.max_message_bytes is not None:
            return self.max_message_bytes
        return max(2 * self.max_frame_bytes, self.max_frame_bytes + 1024 * 1024)

    def endpoint(self, port: int) -> str:
        """``tcp://host:port``, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"tcp://{host}:{port}"
