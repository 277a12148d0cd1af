"""Stable Diffusion XL text-to-image and image-to-image, batched, with per-image seeds and optional ControlNet.

This module is pure compute: torch and diffusers, no Ray, no HTTP. A :class:`SDXLPipeline` wraps one loaded
diffusers pipeline and generates a list of :class:`GenerationRequest` that share a :class:`BatchKey` as one
diffusers call. Each request carries its own seed and gets its own ``torch.Generator``, so an image is the
same whether it ran alone or inside a batch.

A request with a ``control_image`` (e.g. a depth map) runs through the ControlNet variant of its mode
(``StableDiffusionXLControlNetPipeline`` or ``StableDiffusionXLControlNetImg2ImgPipeline``), which shares
the loaded weights. That needs a ControlNet loaded with the model (``load_pipeline(..., controlnet=...)``);
without one such a request is refused.

Loading (:func:`load_pipeline`) takes one of:

- ``"tiny"``: the tiny SDXL-architecture model built offline (see :mod:`pipelines.tiny`);
- a local diffusers folder (``model_index.json`` at its root), e.g. a downloaded SDXL base;
- a single ``.safetensors`` SDXL checkpoint, configured from ``pipelines/configs/sdxl`` so nothing is
  fetched from a hub.

and optionally a ControlNet: ``"tiny"`` (built offline to fit the tiny model) or a local diffusers
ControlNet folder (``config.json`` at its root).

Errors: a request out of range raises :class:`pipelines.errors.InputError`, a cancelled call
:class:`pipelines.errors.Cancelled`; a model that cannot be loaded raises :class:`ModelConfigError`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipelines.backend import Capability
from pipelines.errors import Cancelled, InputError
from pipelines.request import GenerationLimits, GenerationRequest, GenerationResult, Mode, StepCallback

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["SCHEDULERS", "SDXL_CONFIG_DIR", "ModelConfigError", "SDXLPipeline", "load_pipeline"]

SDXL_CONFIG_DIR = Path(__file__).parent / "configs" / "sdxl"
"""SDXL base 1.0 component configs, so single-file checkpoints load offline."""

# name → (diffusers scheduler class, config overrides). Built from the checkpoint's own scheduler config.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
    ),
}


class ModelConfigError(ValueError):
    """The configured model, ControlNet, dtype or attention cannot be loaded: an operator's mistake, not a
    request's (so the edge never reports it as a 422).

    Attributes:
        param: The generator setting at fault (``model``, ``controlnet``, ``dtype``, ``attention``).
        value: The value that was configured.
        allowed: What would have worked.
    """

    def __init__(self, param: str, value: Any, allowed: str) -> None:
        super().__init__(param, value, allowed)
        self.param = param
        self.value = value
        self.allowed = allowed

    def __str__(self) -> str:
        return f"generator.{self.param}={self.value!r} cannot be loaded: {self.allowed}"


class SDXLPipeline:
    """A loaded SDXL pipeline that generates batches of requests: the local :class:`~pipelines.backend.ImageBackend`.

    Not thread-safe: schedulers keep per-call state, so one instance runs one call at a time (a Serve
    replica runs its batches one after another).

    Args:
        pipe: A ``diffusers.StableDiffusionXLPipeline``.
        model_name: Name reported in batch keys.
        limits: Input bounds.
        controlnet: A ``diffusers.ControlNetModel`` for ``pipe``'s UNet, on the same device and in the same
            dtype; requests with a ``control_image`` need one.
    """

    def __init__(
        self,
        pipe: Any,
        model_name: str = "default",
        limits: GenerationLimits | None = None,
        controlnet: Any | None = None,
    ) -> None:
        self._pipe = pipe
        self._controlnet = controlnet
        self.model_name = model_name
        self.limits = limits or GenerationLimits()
        self._variants: dict[tuple[str, str, bool], Any] = {}

    @property
    def name(self) -> str:
        """The backend's name (:class:`pipelines.backend.ImageBackend`); the model is :attr:`model_name`."""
        return "sdxl"

    @property
    def capabilities(self) -> frozenset[Capability]:
        """txt2img and img2img always; ControlNet when one is loaded."""
        caps = {Capability.TXT2IMG, Capability.IMG2IMG}
        if self._controlnet is not None:
            caps.add(Capability.CONTROLNET)
        return frozenset(caps)

    @property
    def device(self) -> Any:
        """The torch device the model runs on."""
        return self._pipe.device

    @property
    def has_controlnet(self) -> bool:
        """Whether a ControlNet is loaded, so requests may carry a ``control_image``."""
        return self._controlnet is not None

    def check(self, request: GenerationRequest) -> None:
        """Raises :class:`InputError` if ``request`` cannot run on this pipeline.

        On top of :meth:`GenerationRequest.check`, a ``control_image`` is refused unless a ControlNet is
        loaded.
        """
        request.check(self.limits)
        if request.control_image is not None and self._controlnet is None:
            raise InputError(
                "control_image", _describe(request.control_image), "a ControlNet configured (generator.controlnet)"
            )

    def _variant(self, mode: Mode, scheduler: str, control: bool = False) -> Any:
        """The diffusers pipeline for a mode, scheduler and ControlNet use, sharing this model's weights."""
        key = (mode, scheduler, control)
        if key not in self._variants:
            import diffusers

            cls_name, overrides = SCHEDULERS[scheduler]
            sched = getattr(diffusers, cls_name).from_config(self._pipe.scheduler.config, **overrides)
            components: dict[str, Any] = {"scheduler": sched}
            if control:
                pipe_cls = (
                    diffusers.StableDiffusionXLControlNetPipeline
                    if mode == "txt2img"
                    else diffusers.StableDiffusionXLControlNetImg2ImgPipeline
                )
                components["controlnet"] = self._controlnet
            else:
                pipe_cls = (
                    diffusers.StableDiffusionXLPipeline
                    if mode == "txt2img"
                    else diffusers.StableDiffusionXLImg2ImgPipeline
                )
            self._variants[key] = pipe_cls.from_pipe(self._pipe, **components)
            self._variants[key].set_progress_bar_config(disable=True)
        return self._variants[key]

    def generate(self, requests: Sequence[GenerationRequest], on_step: StepCallback | None = None) -> GenerationResult:
        """Generates every request in one diffusers call.

        Args:
            requests: Requests that share one :meth:`GenerationRequest.batch_key`.
            on_step: Called after each denoising step with ``(step, total)``; returning False stops the
                call with :class:`Cancelled` (no decode is wasted on it).

        Returns:
            The images in request order.

        Raises:
            InputError: A request is out of range, or the requests do not share a batch key.
            Cancelled: ``on_step`` returned False.
        """
        import torch

        if not requests:
            raise InputError("requests", [], "at least one request")
        for request in requests:
            self.check(request)
        key = requests[0].batch_key()
        for request in requests[1:]:
            if request.batch_key() != key:
                raise InputError("requests", request.batch_key(), f"one batch key: {key}")

        pipe = self._variant(key.mode, key.scheduler, key.control)
        # One generator per image, on the model's device: the image depends on its seed alone.
        generators = [torch.Generator(device=pipe.device).manual_seed(r.seed) for r in requests]
        started = time.perf_counter()
        step_times: list[float] = []

        def _on_step_end(p: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            step_times.append(time.perf_counter())
            total = int(p.num_timesteps)
            if on_step is not None and on_step(step + 1, total) is False:
                raise Cancelled(step + 1, total)
            return kwargs

        call: dict[str, Any] = {
            "prompt": [r.prompt for r in requests],
            "negative_prompt": [r.negative_prompt for r in requests],
            "num_inference_steps": key.steps,
            "guidance_scale": key.guidance,
            "generator": generators,
            "output_type": "pil",
            "callback_on_step_end": _on_step_end,
        }
        if key.mode == "img2img":
            call["image"] = [_fit(r.init_image, key.width, key.height) for r in requests]
            call["strength"] = key.strength
            # img2img takes its size from the image; tell the size conditioning the same.
            call["target_size"] = (key.height, key.width)
            call["original_size"] = (key.height, key.width)
        else:
            call["width"] = key.width
            call["height"] = key.height
        if key.control:
            controls = [_fit(r.control_image, key.width, key.height, param="control_image") for r in requests]
            # The ControlNet txt2img pipeline takes the control image as `image`; img2img keeps `image` for
            # the init image and takes it as `control_image`.
            call["control_image" if key.mode == "img2img" else "image"] = controls
            call["controlnet_conditioning_scale"] = key.control_scale
            if key.mode == "img2img":
                call["width"], call["height"] = key.width, key.height
        with torch.inference_mode():
            output = pipe(**call)
        finished = time.perf_counter()
        denoise = step_times[-1] - step_times[0] if len(step_times) > 1 else 0.0
        return GenerationResult(
            images=[img.convert("RGB") for img in output.images],
            seeds=[r.seed for r in requests],
            timings={"total_s": finished - started, "denoise_s": denoise, "steps": float(len(step_times))},
            batch_size=len(requests),
        )

    def warmup(self, width: int = 64, height: int = 64, steps: int = 2) -> float:
        """Runs one small generation so the first real request does not pay for lazy initialisation.

        Returns:
            Seconds the warm-up took.
        """
        started = time.perf_counter()
        self.generate(
            [GenerationRequest(prompt="warm up", width=width, height=height, steps=steps, model=self.model_name)]
        )
        return time.perf_counter() - started


def _fit(image: Image.Image | None, width: int, height: int, param: str = "init_image") -> Image.Image:
    """The init or control image (named by ``param``) as RGB at the requested size."""
    from PIL import Image as PILImage

    if image is None:
        raise InputError(param, None, "an image")
    image = image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), PILImage.Resampling.LANCZOS)
    return image


def _describe(image: Any) -> str:
    """A short stand-in for an image in error messages (the image itself is too big to log or pickle)."""
    size = getattr(image, "size", None)
    return f"<image {size[0]}x{size[1]}>" if isinstance(size, tuple) and len(size) == 2 else f"<{type(image).__name__}>"


def load_pipeline(
    source: str | Path,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    attention: Literal["sdpa", "xformers"] = "sdpa",
    cache_dir: str | Path = ".cache/models",
    model_name: str | None = None,
    limits: GenerationLimits | None = None,
    controlnet: str | Path | None = None,
) -> SDXLPipeline:
    """Loads an SDXL pipeline, and optionally a ControlNet for it, onto a device.

    Args:
        source: ``"tiny"``, a local diffusers folder, or a single-file ``.safetensors`` checkpoint.
        device: Torch device, e.g. ``"cpu"`` or ``"cuda"``.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``.
        attention: ``"sdpa"`` (PyTorch scaled-dot-product attention, the default) or ``"xformers"``.
        cache_dir: Where the tiny model is built.
        model_name: Name used in batch keys; defaults to the source's name.
        limits: Input bounds.
        controlnet: None for no ControlNet; ``"tiny"`` for the tiny ControlNet (built into ``cache_dir``;
            it fits only the tiny model); or a local diffusers ControlNet folder (``config.json`` at its
            root), e.g. an SDXL depth ControlNet.

    Returns:
        The loaded pipeline, ready to generate.

    Raises:
        ModelConfigError: ``source``, ``dtype``, ``attention`` or ``controlnet`` is not usable.
    """
    import diffusers
    import torch
    import transformers

    # Loading logs a progress bar per component and a warning per dtype cast: noise in a service log.
    for lib in (diffusers, transformers):
        lib.utils.logging.disable_progress_bar()
        lib.utils.logging.set_verbosity_error()
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise ModelConfigError("dtype", dtype, f"one of {sorted(dtypes)}")
    torch_dtype = dtypes[dtype]
    if attention not in ("sdpa", "xformers"):
        raise ModelConfigError("attention", attention, "sdpa or xformers")
    # Refuse a bad ControlNet source before spending minutes loading the model.
    control_src = None if controlnet is None else str(controlnet)
    if control_src not in (None, "tiny") and not (Path(control_src) / "config.json").is_file():
        raise ModelConfigError("controlnet", control_src, "'tiny' or a diffusers folder with config.json")
    src = str(source)
    if src == "tiny":
        from pipelines.tiny import ensure_tiny_model

        path = ensure_tiny_model(cache_dir)
        pipe = diffusers.StableDiffusionXLPipeline.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
    elif Path(src).is_dir() and (Path(src) / "model_index.json").exists():
        pipe = diffusers.StableDiffusionXLPipeline.from_pretrained(src, dtype=torch_dtype, local_files_only=True)
    elif Path(src).is_file() and src.endswith(".safetensors"):
        pipe = diffusers.StableDiffusionXLPipeline.from_single_file(
            src, config=str(SDXL_CONFIG_DIR), dtype=torch_dtype, local_files_only=True
        )
    else:
        raise ModelConfigError("model", src, "'tiny', a diffusers folder with model_index.json, or a .safetensors file")
    # transformers 5 builds a near-empty tokenizer when vocabulary files are missing instead of failing;
    # every prompt would then encode to end-of-text. Refuse such a model rather than serve blank prompts.
    for tok_name, enc_name in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")):
        tokens, expected = len(getattr(pipe, tok_name)), getattr(pipe, enc_name).config.vocab_size
        if tokens != expected:
            raise ModelConfigError(
                "model", src, f"{tok_name} with {expected} tokens like {enc_name}, not {tokens} (vocab files missing?)"
            )
    control_model = None
    if control_src is not None:
        control_path: str | Path = control_src
        if control_src == "tiny":
            from pipelines.tiny import ensure_tiny_controlnet

            control_path = ensure_tiny_controlnet(cache_dir)
        control_model = diffusers.ControlNetModel.from_pretrained(
            control_path, dtype=torch_dtype, local_files_only=True
        )
        _check_controlnet_fits(control_model, pipe.unet, control_src)
        control_model.to(device)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if attention == "xformers":
        pipe.enable_xformers_memory_efficient_attention()
        if control_model is not None:
            control_model.enable_xformers_memory_efficient_attention()
    return SDXLPipeline(pipe, model_name=model_name or Path(src).stem, limits=limits, controlnet=control_model)


def _check_controlnet_fits(controlnet: Any, unet: Any, source: str) -> None:
    """Refuses a ControlNet whose residuals or conditioning would not fit the UNet.

    A mismatch (e.g. an SD 1.5 ControlNet on SDXL, or the tiny one on a real model) would otherwise only
    fail with a shape error inside the first controlled generation.
    """
    for name in ("in_channels", "block_out_channels", "layers_per_block", "cross_attention_dim", "addition_embed_type"):
        mine, theirs = controlnet.config.get(name), unet.config.get(name)
        if isinstance(mine, list | tuple) and isinstance(theirs, list | tuple):
            mine, theirs = list(mine), list(theirs)
        if mine != theirs:
            raise ModelConfigError(
                "controlnet", source, f"a ControlNet for this model's UNet ({name} {theirs!r}, not {mine!r})"
            )
