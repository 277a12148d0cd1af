"""The shape every paid image API takes as a limner backend.

:class:`RemoteBackend` satisfies :class:`pipelines.backend.ImageBackend`'s ``name``, ``capabilities`` and
``check``, with an ``async`` :meth:`RemoteBackend.generate` that a remote deployment awaits (it never blocks a
thread). Each subclass (getimg, fal, openai, runware) says what its API accepts in :class:`RemoteLimits`,
so the base :meth:`RemoteBackend.check` refuses the rest before any paid call. All HTTP goes through one
:class:`pipelines.remote.transport.Transport`, which owns retries, rate limit, breaker and download caps.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import httpx
from PIL import Image, UnidentifiedImageError

from pipelines.backend import Capability
from pipelines.errors import Cancelled, InputError
from pipelines.remote.errors import BackendUnavailable, RemoteError
from pipelines.remote.transport import Transport, TransportPolicy
from pipelines.request import GenerationRequest, GenerationResult, StepCallback

__all__ = ["RemoteBackend", "RemoteLimits", "b64", "data_url", "decode_image", "image_bytes"]

_DEFAULT_POLICY = TransportPolicy()


@dataclass(frozen=True)
class RemoteLimits:
    """What one API accepts; :meth:`RemoteBackend.check` refuses anything else.

    Attributes:
        multiple: Width and height must be multiples of this.
        min_size: Smallest width or height.
        max_size: Largest width or height.
        sizes: The only ``(width, height)`` pairs accepted (OpenAI); None: any size within the bounds.
        max_steps: Most steps; None: the API takes no steps, so any value is accepted (and ignored).
        schedulers: The limner scheduler names it can honour; None: any (it ignores or maps them all).
        max_images: Images per API call (``generate`` splits larger batches).
        max_prompt_chars: Longest prompt (and negative prompt).
        max_input_side: Largest side of an enhancement's input image; None: no limit.
    """

    multiple: int = 8
    min_size: int = 64
    max_size: int = 2048
    sizes: tuple[tuple[int, int], ...] | None = None
    max_steps: int | None = 100
    schedulers: tuple[str, ...] | None = None
    max_images: int = 1
    max_prompt_chars: int = 2000
    max_input_side: int | None = None


class RemoteBackend(abc.ABC):
    """One paid API as an image backend.

    Attributes:
        name: The backend's name (``"getimg"``, ``"fal"``, ``"openai"``, ``"runware"``).
        default_base_url: Where the API lives unless configured otherwise.
        key_env: The environment variable the edge reads its key from (pipelines/ never reads it).
        default_model: The model used when none is configured (None: the subclass decides).
        limits: What the API accepts (class or instance attribute).
        transport: The HTTP transport every call goes through.
        model: The configured model, else ``default_model``.
        price_usd: The configured price of one image, used where the API reports no cost.
    """

    name: ClassVar[str]
    default_base_url: ClassVar[str]
    key_env: ClassVar[str]
    default_model: ClassVar[str | None] = None
    limits: RemoteLimits = RemoteLimits()

    def __init__(self, transport: Transport, *, model: str | None = None, price_usd: float | None = None) -> None:
        self.transport = transport
        self.model = model or self.default_model
        self.price_usd = price_usd

    @classmethod
    def create(
        cls,
        key: str,
        *,
        base_url: str | None = None,
        model: str | None = None,
        price_usd: float | None = None,
        policy: TransportPolicy = _DEFAULT_POLICY,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> RemoteBackend:
        """Builds the backend over its own :class:`Transport`.

        Args:
            key: The API key (goes into the transport's headers only; never logged).
            base_url: The API's root URL; None: :attr:`default_base_url`.
            model: The model to use; None: the backend's default.
            price_usd: The price of one image, where the API reports none.
            policy: Timeouts, retries, rate limit, concurrency and breaker settings.
            http_transport: An httpx transport to send through instead of the network (tests).

        Returns:
            The backend.
        """
        transport = Transport(
            cls.name,
            base_url or cls.default_base_url,
            cls.auth_headers(key),
            policy,
            classify=cls.classify,
            http_transport=http_transport,
        )
        return cls(transport, model=model, price_usd=price_usd)

    @property
    @abc.abstractmethod
    def capabilities(self) -> frozenset[Capability]:
        """What this API can do (a subclass may make it a plain class attribute)."""

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        """The headers that authenticate with ``key``: ``Authorization: Bearer <key>`` unless overridden."""
        return {"Authorization": f"Bearer {key}"}

    @classmethod
    def classify(cls, response: httpx.Response) -> RemoteError | None:
        """Maps an API-specific error response to an error; None leaves it to the transport's default rules."""
        return None

    @property
    def label(self) -> str:
        """How refusals name the backend: ``"openai (gpt-image-1)"``, or just the name without a model."""
        return f"{self.name} ({self.model})" if self.model else self.name

    def check(self, request: GenerationRequest) -> None:
        """Raises :class:`InputError` naming the first field this API cannot honour; does no work.

        Args:
            request: The request to check (already checked against the general limits by the caller).
        """
        limits, where = self.limits, f"on backend {self.label}"
        mode = Capability(request.mode) if request.mode in ("txt2img", "img2img") else None
        if mode not in self.capabilities:
            allowed = sorted(c.value for c in self.capabilities if c in (Capability.TXT2IMG, Capability.IMG2IMG))
            raise InputError("mode", request.mode, f"one of {allowed} {where}")
        if request.control_image is not None and Capability.CONTROLNET not in self.capabilities:
            raise InputError("control_image", "<image>", f"no control image {where}")
        if limits.sizes is not None:
            if (request.width, request.height) not in limits.sizes:
                shown = ", ".join(f"{w}x{h}" for w, h in limits.sizes)
                raise InputError("width", f"{request.width}x{request.height}", f"one of {shown} {where}")
        else:
            for field in ("width", "height"):
                size = getattr(request, field)
                if size % limits.multiple or not limits.min_size <= size <= limits.max_size:
                    allowed = f"a multiple of {limits.multiple} from {limits.min_size} to {limits.max_size}"
                    raise InputError(field, size, f"{allowed} {where}")
        if limits.max_steps is not None and request.steps > limits.max_steps:
            raise InputError("steps", request.steps, f"at most {limits.max_steps} {where}")
        if limits.schedulers is not None and request.scheduler not in limits.schedulers:
            raise InputError("scheduler", request.scheduler, f"one of {sorted(limits.schedulers)} {where}")
        for field in ("prompt", "negative_prompt"):
            text = getattr(request, field)
            if len(text) > limits.max_prompt_chars:
                raise InputError(field, f"<{len(text)} characters>", f"at most {limits.max_prompt_chars} {where}")

    def check_batch(self, requests: Sequence[GenerationRequest]) -> None:
        """Checks each request; more than ``limits.max_images`` is fine (``generate`` splits the calls)."""
        for request in requests:
            self.check(request)

    def cost(self, api_figure: float | None) -> float | None:
        """One image's cost: the API's own figure where it reported one, else the configured price."""
        return float(api_figure) if api_figure is not None else self.price_usd

    @abc.abstractmethod
    async def generate(
        self, requests: Sequence[GenerationRequest], on_step: StepCallback | None = None
    ) -> GenerationResult:
        """Generates one image per request, in request order.

        Holds ``transport.slot()`` per API call. Reports progress to ``on_step(step, total)`` (at least (0, 1)
        at submit and (1, 1) at the end); if it returns False, cancels remotely where the API can and raises
        :class:`pipelines.errors.Cancelled`.

        Args:
            requests: The requests, already checked.
            on_step: Progress callback; returning False cancels.

        Returns:
            The images (RGB), seeds, ``timings["total_s"]``, per-image ``costs_usd`` and ``backend``.
        """

    async def upscale(self, image: Image.Image, scale: int) -> tuple[Image.Image, float | None]:
        """Upscales ``image`` by ``scale``; returns the image and its cost. Refused unless overridden."""
        raise InputError("method", "remote", f"no upscaling on backend {self.name}")

    async def face_fix(self, image: Image.Image) -> tuple[Image.Image, float | None]:
        """Restores faces in ``image``; returns the image and its cost. Refused unless overridden."""
        raise InputError("method", "remote", f"no face fix on backend {self.name}")

    async def aclose(self) -> None:
        """Closes the transport's HTTP client."""
        await self.transport.aclose()


def image_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    """``image`` encoded as ``fmt`` (PNG by default)."""
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def b64(image: Image.Image, fmt: str = "PNG") -> str:
    """``image`` encoded as ``fmt``, then base64 (no data-URL prefix)."""
    return base64.b64encode(image_bytes(image, fmt)).decode("ascii")


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    """``image`` as a ``data:image/<fmt>;base64,...`` URL."""
    return f"data:image/{fmt.lower()};base64,{b64(image, fmt)}"


def decode_image(data: bytes, backend: str = "remote") -> Image.Image:
    """Decodes an API's image bytes to RGB.

    Args:
        data: The encoded image.
        backend: The backend's name, for the error.

    Returns:
        The RGB image, fully loaded.

    Raises:
        BackendUnavailable: The bytes are not an image; retryable, since it is usually a truncated download.
    """
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BackendUnavailable(backend, f"the API returned bytes that are not an image ({exc})") from exc


async def decode_image_async(data: bytes, backend: str = "remote") -> Image.Image:
    """:func:`decode_image` in a worker thread: a 1024x1024 JPEG takes tens of milliseconds to decode, which on the
    event loop would stall every other call in flight (Pillow releases the GIL while it decodes)."""
    return await asyncio.to_thread(decode_image, data, backend)


_T = TypeVar("_T")


def report_step(on_step: StepCallback | None, step: int, total: int) -> None:
    """Reports ``(step, total)``; raises :class:`~pipelines.errors.Cancelled` when ``on_step`` answers False."""
    if on_step is not None and on_step(step, total) is False:
        raise Cancelled(step, total)


async def run_each(
    requests: Sequence[GenerationRequest],
    one: Callable[[GenerationRequest], Awaitable[_T]],
    on_step: StepCallback | None,
) -> list[_T]:
    """Runs ``one`` on every request concurrently (one API call each), reporting ``(done, total)``; False from
    ``on_step`` cancels the calls still running."""
    total, done = len(requests), 0
    report_step(on_step, 0, total)

    async def run(request: GenerationRequest) -> _T:
        nonlocal done
        out = await one(request)
        done += 1
        report_step(on_step, done, total)
        return out

    tasks = [asyncio.ensure_future(run(request)) for request in requests]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
