"""Experimance: a drop-in image server for the installation's ZMQ bus (docs/EXPERIMANCE_PROTOCOL.md).

- :mod:`~serve_app.experimance.protocol`: the wire messages (``RenderRequest`` in, ``ImageReady`` out) for the
  ``experimance``, ``fire`` and ``base`` schema variants, and their codec;
- :mod:`~serve_app.experimance.styles`: the built-in era/biome style pack;
- :mod:`~serve_app.experimance.config`: :class:`BridgeConfig`, the bridge's settings (pydantic only);
- :mod:`~serve_app.experimance.bridge`: :class:`ZmqBridge`, the asyncio worker that connects to the core and
  answers every request, with an injected render coroutine;
- :mod:`~serve_app.experimance.outputs`: :class:`OutputFolder`, the image files and the fallback images;
- :mod:`~serve_app.experimance.health`: the installation-format health file.

The names from :mod:`~serve_app.experimance.bridge` are imported on first use, so importing this package (and
:mod:`serve_app.config`, which embeds :class:`BridgeConfig`) does not import zmq.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from serve_app.experimance.config import BridgeConfig, FallbackConfig
from serve_app.experimance.outputs import OutputFolder
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

if TYPE_CHECKING:
    from serve_app.experimance.bridge import BridgeJob, BridgeStats, CancelFn, RenderFn, RenderResult, ZmqBridge

_FROM_BRIDGE = frozenset({"BridgeJob", "BridgeStats", "CancelFn", "RenderFn", "RenderResult", "ZmqBridge"})

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
    "OutputFolder",
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


def __getattr__(name: str) -> Any:
    # PEP 562: the bridge (and with it zmq) is imported only when one of its names is asked for.
    if name in _FROM_BRIDGE:
        value = getattr(importlib.import_module("serve_app.experimance.bridge"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
