"""Experimance: a drop-in image server for the installation's ZMQ bus (docs/EXPERIMANCE_PROTOCOL.md).

- :mod:`~serve_app.experimance.protocol`: the wire messages (``RenderRequest`` in, ``ImageReady`` out) for the
  ``experimance``, ``fire`` and ``base`` schema variants, and their codec;
- :mod:`~serve_app.experimance.styles`: the built-in era/biome style pack;
- :mod:`~serve_app.experimance.bridge`: :class:`ZmqBridge`, the asyncio worker that connects to the core and
  answers every request, with an injected render coroutine.
"""

from serve_app.experimance.bridge import (
    BridgeConfig,
    BridgeJob,
    BridgeStats,
    CancelFn,
    FallbackConfig,
    RenderFn,
    RenderResult,
    ZmqBridge,
)
from serve_app.experimance.protocol import (
    FRAME_ERROR_REASONS,
    Biome,
    Era,
    ExperimanceImageReady,
    ExperimanceRenderRequest,
    FireRenderRequest,
    FrameError,
    FrameErrorReason,
    ImageReady,
    ImageSource,
    RenderRequest,
    SchemaVariant,
    decode_frame,
    encode_image_ready,
    file_uri,
    image_ready_for,
    load_image_source,
)
from serve_app.experimance.styles import style_for

__all__ = [
    "FRAME_ERROR_REASONS",
    "Biome",
    "BridgeConfig",
    "BridgeJob",
    "BridgeStats",
    "CancelFn",
    "Era",
    "ExperimanceImageReady",
    "ExperimanceRenderRequest",
    "FallbackConfig",
    "FireRenderRequest",
    "FrameError",
    "FrameErrorReason",
    "ImageReady",
    "ImageSource",
    "RenderFn",
    "RenderRequest",
    "RenderResult",
    "SchemaVariant",
    "ZmqBridge",
    "decode_frame",
    "encode_image_ready",
    "file_uri",
    "image_ready_for",
    "load_image_source",
    "style_for",
]
