"""ESRGAN-family upscaler networks, loaded from a file and run tile by tile.

**The built-in net** (:data:`CompactSR`, :func:`build_compact`) has the shape of Real-ESRGAN's
``SRVGGNetCompact`` (the "compact" net of realesr-animevideov3 and realesr-general-x4v3): a 3x3 convolution and a
PReLU, ``num_conv`` more of each, a 3x3 convolution to ``3 * scale**2`` channels, a ``PixelShuffle(scale)``, plus
the nearest-neighbour upscaled input added back as a residual. Its parameter names (``body.0.weight`` ...
``body.{2 * num_conv + 2}.bias``) are Real-ESRGAN's, so its weights are laid out as theirs are. Everything is a
3x3 convolution or per-pixel, so an output pixel depends only on the input within ``num_conv + 2`` pixels of its
source pixel (:attr:`receptive_radius`), with zero padding at the image's edge. :func:`build_compact` draws fixed
random weights from a seed (He-normal convolutions, small random biases, PReLU slopes 0.25, the last convolution
scaled down so the net adds a few grey levels of "detail" to the nearest upscale, as a trained net adds a
residual): the same seed gives the same weights on every run, and a small net runs on a laptop CPU. It exercises
loading, tiling and blending on the CPU profile; it does not improve pictures.

**Files** (:func:`save_model`, :func:`load_upscaler`). ``.safetensors`` holds the tensors with the net's
configuration (Real-ESRGAN's keyword names: ``num_in_ch``, ``num_out_ch``, ``num_feat``, ``num_conv``, ``upscale``,
``act_type``) as JSON in the header's metadata under ``limner_config``, marked ``limner_arch:
limner-compact-sr``; ``.pth`` / ``.pt`` is a ``torch.save`` dict ``{"limner_arch", "limner_config", "params"}``
read back with ``weights_only=True``. Such a file loads in plain torch. Any other file (real ESRGAN, Real-ESRGAN,
SwinIR... weights a user configures) goes through spandrel, which detects the architecture from the state dict;
spandrel is in the ``gpu`` extra, imported only then, and a clear :class:`ImportError` names that extra when it is
missing. Only 3-channel super-resolution models (spandrel purpose ``SR``) are accepted.

**Tiled inference** (:func:`upscale_with_model`). The input is planned with :func:`~pipelines.enhance.tiles.tile_plan`,
each tile (all of one size) runs through the net in batches, and the outputs are blended in output space with
:func:`~pipelines.enhance.tiles.feather_weights` at the net's scale, so the result is exactly ``scale`` times the
input's size. Pixels are float32 in ``[0, 1]`` (the net's output clamped there), rounded to 8 bits once at the
end. Where every tile covering an input pixel reaches at least :attr:`receptive_radius` pixels beyond it (or to
the image's edge), the tiled output equals the untiled one up to float rounding; elsewhere the feathering hides
the seam. On CUDA out-of-memory the tile is halved, down to 128 pixels, as ComfyUI does.
"""

from __future__ import annotations

import functools
import json
import math
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pipelines.enhance.tiles import check_tiling, feather_weights, tile_plan
from pipelines.errors import InputError

if TYPE_CHECKING:
    import torch

    CompactSR: type[torch.nn.Module]  # defined on first use by the module's __getattr__

__all__ = [
    "COMPACT_ARCH",
    "DEFAULT_SCALE",
    "DEFAULT_SEED",
    "MIN_OOM_TILE",
    "CompactSR",
    "Upscaler",
    "build_compact",
    "default_model_path",
    "ensure_default_model",
    "load_upscaler",
    "save_model",
    "upscale_with_model",
]

COMPACT_ARCH = "limner-compact-sr"
"""The ``limner_arch`` marker of a file :func:`save_model` wrote."""
DEFAULT_SCALE = 2
"""Scale of the CPU profile's built-in net."""
DEFAULT_SEED = 1234
"""Seed of the CPU profile's built-in net; changing it changes every model-upscaled test image."""
MIN_OOM_TILE = 128
"""The smallest tile :func:`upscale_with_model` halves down to on out-of-memory."""
# Bumped whenever build_compact's weights change, so a stale cached file is rebuilt rather than reused.
_BUILD_VERSION = 1
# Standard deviations of the random biases and of the last convolution's weights (times He-normal): the net's
# residual is then a few grey levels, so its output stays close to the nearest upscale, never saturated.
_BIAS_STD = 0.02
_LAST_GAIN = 0.1


@functools.cache
def _compact_class() -> type[torch.nn.Module]:
    """Builds the CompactSR class on first use, so importing this module does not import torch."""
    from torch import nn
    from torch.nn import functional

    class CompactSR(nn.Module):
        """Real-ESRGAN's SRVGGNetCompact in plain torch (PReLU activations).

        Args:
            num_in_ch: Input channels.
            num_out_ch: Output channels.
            num_feat: Feature channels of the body.
            num_conv: Body convolutions after the first one.
            upscale: The output is this many times the input's size.
            act_type: Only ``prelu``.
        """

        def __init__(
            self,
            num_in_ch: int = 3,
            num_out_ch: int = 3,
            num_feat: int = 16,
            num_conv: int = 4,
            upscale: int = 2,
            act_type: str = "prelu",
        ) -> None:
            super().__init__()
            _check_config(num_in_ch, num_out_ch, num_feat, num_conv, upscale, act_type)
            self.num_in_ch, self.num_out_ch = num_in_ch, num_out_ch
            self.num_feat, self.num_conv, self.upscale = num_feat, num_conv, upscale
            layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
            for _ in range(num_conv):
                layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
            layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
            self.body = nn.ModuleList(layers)
            self.upsampler = nn.PixelShuffle(upscale)

        @property
        def scale(self) -> int:
            """The output is this many times the input's size."""
            return self.upscale

        @property
        def receptive_radius(self) -> int:
            """How far (input pixels) an output pixel's source pixel sees: one per 3x3 convolution."""
            return self.num_conv + 2

        def config(self) -> dict[str, Any]:
            """The constructor's arguments, as stored in a saved file."""
            return {
                "num_in_ch": self.num_in_ch,
                "num_out_ch": self.num_out_ch,
                "num_feat": self.num_feat,
                "num_conv": self.num_conv,
                "upscale": self.upscale,
                "act_type": "prelu",
            }

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """``(N, num_in_ch, H, W)`` in ``[0, 1]`` to ``(N, num_out_ch, H * upscale, W * upscale)``."""
            out = x
            for layer in self.body:
                out = layer(out)
            out = self.upsampler(out)
            base: torch.Tensor = functional.interpolate(x, scale_factor=self.upscale, mode="nearest")
            return out + base

    CompactSR.__module__ = __name__
    CompactSR.__qualname__ = "CompactSR"
    return CompactSR


def __getattr__(name: str) -> Any:
    # CompactSR subclasses torch.nn.Module, so it exists only once torch is imported (PEP 562).
    if name == "CompactSR":
        return _compact_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_config(num_in_ch: int, num_out_ch: int, num_feat: int, num_conv: int, upscale: int, act: str) -> None:
    bounds = {"num_in_ch": (num_in_ch, 1, 4), "num_out_ch": (num_out_ch, 1, 4), "num_feat": (num_feat, 1, 256)}
    bounds |= {"num_conv": (num_conv, 0, 64), "upscale": (upscale, 1, 4)}
    for name, (value, low, high) in bounds.items():
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InputError(name, value, f"an integer from {low} to {high}")
    if act != "prelu":
        raise InputError("act_type", act, "prelu")


def build_compact(scale: int = DEFAULT_SCALE, num_feat: int = 16, num_conv: int = 4, seed: int = DEFAULT_SEED) -> Any:
    """Builds a CompactSR with fixed random weights drawn from ``seed``.

    Args:
        scale: Upscale factor, 1 to 4.
        num_feat: Feature channels.
        num_conv: Body convolutions after the first (the receptive radius is ``num_conv + 2``).
        seed: Seed of the weights: the same seed gives the same weights on every run.

    Returns:
        The :data:`CompactSR` module, float32 on the CPU, in eval mode.
    """
    import torch

    model = _compact_class()(num_feat=num_feat, num_conv=num_conv, upscale=scale)
    generator = torch.Generator().manual_seed(seed)
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for index, conv in enumerate(convs):
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            std = math.sqrt(2.0 / fan_in) * (_LAST_GAIN if index == len(convs) - 1 else 1.0)
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
            if conv.bias is not None:
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator) * _BIAS_STD)
        for module in model.body:
            if isinstance(module, torch.nn.PReLU):
                module.weight.fill_(0.25)
    return model.eval()


def save_model(model: Any, path: str | Path) -> Path:
    """Writes a CompactSR to ``path`` (``.safetensors``, or ``.pth`` / ``.pt``), atomically.

    Args:
        model: A :data:`CompactSR`.
        path: Where to write; the suffix picks the format, the folder is created if needed.

    Returns:
        The path written.
    """
    import torch

    if not isinstance(model, _compact_class()):
        raise InputError("model", type(model).__name__, "a CompactSR")
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".safetensors", ".pth", ".pt"):
        raise InputError("path", str(path), "a .safetensors, .pth or .pt file name")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            metadata = {"format": "pt", "limner_arch": COMPACT_ARCH, "limner_config": json.dumps(model.config())}
            save_file(state, tmp, metadata=metadata)
        else:
            torch.save({"limner_arch": COMPACT_ARCH, "limner_config": model.config(), "params": state}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class Upscaler:
    """A super-resolution network ready to run: float32 RGB in ``[0, 1]`` in, ``scale`` times bigger out.

    Args:
        net: Maps ``(N, 3, H, W)`` to ``(N, 3, H * scale, W * scale)`` on ``device``.
        scale: The net's upscale factor.
        name: What the net is (``CompactSR``, or spandrel's architecture name).
        device: Where the net's weights live (``cpu``, ``cuda``...).
        max_batch: Most tiles per call of ``net``.
        receptive_radius: Input pixels an output pixel's source pixel sees, when known (None: unbounded).
    """

    def __init__(
        self,
        net: Callable[[torch.Tensor], torch.Tensor],
        scale: int,
        *,
        name: str,
        device: str = "cpu",
        max_batch: int = 4,
        receptive_radius: int | None = None,
    ) -> None:
        self.net = net
        self.scale = scale
        self.name = name
        self.device = device
        self.max_batch = max_batch
        self.receptive_radius = receptive_radius

    def __repr__(self) -> str:
        return f"Upscaler({self.name}, x{self.scale}, {self.device})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Runs the net once on a batch of same-size images.

        Args:
            batch: float32 ``(N, H, W, 3)`` in ``[0, 1]``.

        Returns:
            float32 ``(N, H * scale, W * scale, 3)``, clamped to ``[0, 1]``.
        """
        import torch

        n, h, w, _ = batch.shape
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).permute(0, 3, 1, 2).to(self.device)
        with torch.inference_mode():
            y = self.net(x).float().clamp_(0.0, 1.0)
        if tuple(y.shape) != (n, 3, h * self.scale, w * self.scale):
            raise RuntimeError(f"{self.name} turned {(n, 3, h, w)} into {tuple(y.shape)}, not x{self.scale}")
        out: np.ndarray = y.permute(0, 2, 3, 1).cpu().numpy()
        return out

    def __call__(self, image: Image.Image) -> Image.Image:
        """Upscales the whole image in one call of the net (no tiling)."""
        return _to_image(self.run(_to_array(image)[None])[0])


def _to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _to_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8), "RGB")


def _read_own(path: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The config and state dict of a file :func:`save_model` wrote, or None for any other file."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("limner_arch") != COMPACT_ARCH:
                return None
            try:
                config = json.loads(metadata["limner_config"])
            except (KeyError, json.JSONDecodeError) as exc:
                raise InputError("model_path", str(path), "a CompactSR file with its limner_config") from exc
            return config, {key: handle.get_tensor(key) for key in handle.keys()}
    if suffix in (".pth", ".pt"):
        import torch

        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            return None  # not plain tensors: spandrel's own loader may still read it
        if not isinstance(data, dict) or data.get("limner_arch") != COMPACT_ARCH:
            return None
        if not isinstance(data.get("limner_config"), dict) or not isinstance(data.get("params"), dict):
            raise InputError("model_path", str(path), "a CompactSR file with limner_config and params")
        return data["limner_config"], data["params"]
    return None


def load_upscaler(path: str | Path, *, device: str = "cpu") -> Upscaler:
    """Loads upscaler weights: a :func:`save_model` file in plain torch, anything else through spandrel.

    Args:
        path: The weights file.
        device: Where to run (``cpu``, ``cuda``, ``cuda:1``...).

    Returns:
        The :class:`Upscaler`, float32, in eval mode.

    Raises:
        FileNotFoundError: No such file.
        ImportError: Not a CompactSR file and spandrel (the ``gpu`` extra) does not import.
        InputError: ``model_path`` when the file is not a 3-channel super-resolution model.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"upscaler weights {path} not found")
    own = _read_own(path)
    if own is not None:
        config, state = own
        try:
            model = _compact_class()(**config)
        except TypeError as exc:
            raise InputError("model_path", str(path), f"a CompactSR config, not {config}") from exc
        model.load_state_dict(state, strict=True)
        model = model.to(device).eval()
        return Upscaler(model, model.scale, name="CompactSR", device=device, receptive_radius=model.receptive_radius)
    return _load_spandrel(path, device)


def _load_spandrel(path: Path, device: str) -> Upscaler:
    try:
        import spandrel
    except ImportError as exc:
        raise ImportError(
            f"{path} is not a limner CompactSR file; other upscaler weights load through spandrel, which is in "
            f"the `gpu` extra (pip install 'limner[gpu]') and did not import: {exc}"
        ) from exc
    import torch

    descriptor = spandrel.ModelLoader(device=torch.device(device)).load_from_file(str(path))
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR":
        purpose = getattr(descriptor, "purpose", type(descriptor).__name__)
        raise InputError("model_path", str(path), f"a super-resolution (SR) model, not {purpose}")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        channels = (descriptor.input_channels, descriptor.output_channels)
        raise InputError("model_path", str(path), f"an RGB model (3 channels in and out), not {channels}")
    descriptor.to(device=torch.device(device), dtype=torch.float32).eval()
    # The descriptor pads to the net's size requirements and clamps; it takes one image per call.
    return Upscaler(descriptor, descriptor.scale, name=descriptor.architecture.name, device=device, max_batch=1)


def upscale_with_model(upscaler: Upscaler, image: Image.Image, *, tile: int = 512, overlap: int = 32) -> Image.Image:
    """Upscales an image tile by tile through a net, blending the tiles in output space.

    Args:
        upscaler: The net.
        image: The image (converted to RGB).
        tile: Input tile side (see :func:`~pipelines.enhance.tiles.tile_plan`).
        overlap: Input pixels neighbouring tiles share at least.

    Returns:
        The RGB image, exactly ``upscaler.scale`` times the input's width and height.
    """
    import torch

    check_tiling(tile, overlap)
    pixels = _to_array(image)
    while True:
        try:
            return _to_image(_tiled(upscaler, pixels, tile, overlap))
        except torch.OutOfMemoryError:
            if tile <= MIN_OOM_TILE:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            tile = max(MIN_OOM_TILE, tile // 2 // 8 * 8)
            overlap = min(overlap, tile // 4)


def _tiled(upscaler: Upscaler, pixels: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = upscaler.scale
    plan = tile_plan(width, height, tile, overlap)
    if len(plan) == 1:
        out: np.ndarray = upscaler.run(pixels[None])[0]
        return out
    out = np.zeros((height * scale, width * scale, 3), dtype=np.float32)
    step = max(1, upscaler.max_batch)
    for first in range(0, len(plan), step):
        chunk = plan[first : first + step]
        crops = np.stack([pixels[t.box[1] : t.box[3], t.box[0] : t.box[2]] for t in chunk])
        for t, result in zip(chunk, upscaler.run(crops), strict=True):
            left, top, right, bottom = (side * scale for side in t.box)
            out[top:bottom, left:right] += result * feather_weights(t, width, height, overlap, scale=scale)[..., None]
    return out


def default_model_path(cache_dir: str | Path) -> Path:
    """Where :func:`ensure_default_model` keeps the CPU profile's net.

    Args:
        cache_dir: Directory that holds built models (outside git).

    Returns:
        ``<cache_dir>/limner-compact-x2-s1234-v1.safetensors`` (scale, seed and build version in the name).
    """
    name = f"limner-compact-x{DEFAULT_SCALE}-s{DEFAULT_SEED}-v{_BUILD_VERSION}.safetensors"
    return Path(cache_dir).expanduser().resolve() / name


def ensure_default_model(cache_dir: str | Path) -> Path:
    """Returns the CPU profile's net file, building and saving it first if it is not there.

    The file is written to a temporary sibling and renamed into place, so a concurrent or interrupted build
    never leaves a half-written file under the final name.

    Args:
        cache_dir: Directory that holds built models (outside git).

    Returns:
        :func:`default_model_path`, loadable with :func:`load_upscaler`.
    """
    path = default_model_path(cache_dir)
    if not path.is_file():
        save_model(build_compact(DEFAULT_SCALE, seed=DEFAULT_SEED), path)
    return path
