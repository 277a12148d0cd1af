"""OpenAI's image API as a limner backend (shared/docs/REMOTE_APIS.md §2.3).

Text-to-image is ``POST /images/generations``, image-to-image ``POST /images/edits`` (multipart, GPT image
models only). The sizes depend on the model, so :attr:`OpenAIBackend.limits` is per instance. The API takes no
steps, guidance, seed, scheduler, strength or negative prompt: those are accepted and ignored (themes add
negative prompts to most requests, so refusing one would refuse nearly everything), and the result records the
request's seed. Usage is reported in tokens, not dollars, so each image costs the configured ``price_usd``.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
from PIL import Image

from pipelines.backend import Capability
from pipelines.errors import InputError
from pipelines.remote.base import RemoteBackend, RemoteLimits, decode_image_async, image_bytes, run_each
from pipelines.remote.errors import BackendBudgetError, BackendInputError, BackendUnavailable, RemoteError
from pipelines.remote.transport import Transport
from pipelines.request import GenerationRequest, GenerationResult, StepCallback

__all__ = ["OpenAIBackend"]


_GPT_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
_DALLE3_SIZES = ((1024, 1024), (1792, 1024), (1024, 1792))
_DALLE2_SIZES = ((256, 256), (512, 512), (1024, 1024))
# gpt-image-2 takes any multiple of 16 with an aspect ratio from 1:3 to 3:1, up to 3840x2160 pixels.
_GPT2_MAX_PIXELS = 3840 * 2160
_GPT2_MAX_ASPECT = 3.0
# A 429 with one of these codes (or type) is an exhausted account, not a rate limit: never retried.
_BUDGET_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
    }
)
# A 400 with one of these codes is the safety system refusing the prompt (dall-e, GPT image models).
_MODERATION_CODES = frozenset({"content_policy_violation", "moderation_blocked"})


def _limits(model: str) -> RemoteLimits:
    """What ``model`` accepts: exact sizes for all but gpt-image-2, its prompt length; never steps."""
    if model.startswith("dall-e-2"):
        return RemoteLimits(sizes=_DALLE2_SIZES, max_steps=None, max_prompt_chars=1000)
    if model.startswith("dall-e-3"):
        return RemoteLimits(sizes=_DALLE3_SIZES, max_steps=None, max_prompt_chars=4000)
    if model.startswith("gpt-image-2"):
        return RemoteLimits(multiple=16, min_size=64, max_size=3840, max_steps=None, max_prompt_chars=32000)
    # gpt-image-1, -1-mini, -1.5 and their dated names.
    return RemoteLimits(sizes=_GPT_SIZES, max_steps=None, max_prompt_chars=32000)


class OpenAIBackend(RemoteBackend):
    """OpenAI's GPT image (``gpt-image-1`` by default) and DALL-E models."""

    name: ClassVar[str] = "openai"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    key_env: ClassVar[str] = "LIMNER_OPENAI_API_KEY"
    default_model: ClassVar[str | None] = "gpt-image-1"

    def __init__(self, transport: Transport, *, model: str | None = None, price_usd: float | None = None) -> None:
        super().__init__(transport, model=model, price_usd=price_usd)
        self.limits = _limits(self.model or "")

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Text-to-image; image-to-image (edits) on GPT image models only.

        dall-e-3 has no edits, and dall-e-2's edits are inpainting: without a mask they repaint the input's
        transparent pixels, so an opaque init image would come back unchanged or be refused.
        """
        if self._dalle:
            return frozenset({Capability.TXT2IMG})
        return frozenset({Capability.TXT2IMG, Capability.IMG2IMG})

    @property
    def _dalle(self) -> bool:
        return bool(self.model and self.model.startswith("dall-e"))

    def check(self, request: GenerationRequest) -> None:
        """The base checks, plus gpt-image-2's aspect ratio and pixel count.

        Args:
            request: The request.
        """
        super().check(request)
        if self.limits.sizes is None:
            width, height = request.width, request.height
            if max(width, height) > _GPT2_MAX_ASPECT * min(width, height):
                raise InputError(
                    "width", f"{width}x{height}", f"an aspect ratio from 1:3 to 3:1 on backend {self.label}"
                )
            if width * height > _GPT2_MAX_PIXELS:
                raise InputError("width", f"{width}x{height}", f"at most 3840x2160 pixels on backend {self.label}")

    @classmethod
    def classify(cls, response: httpx.Response) -> RemoteError | None:
        """A 429 for an exhausted quota is a budget error (not retried); a safety refusal blames the prompt."""
        if response.status_code not in (400, 429):
            return None
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            return None
        if not isinstance(error, dict):
            return None
        code, kind = str(error.get("code") or ""), str(error.get("type") or "")
        message = f"HTTP {response.status_code}: {error.get('message') or code or kind}"
        if response.status_code == 429 and (code in _BUDGET_CODES or kind in _BUDGET_CODES):
            return BackendBudgetError(cls.name, message, status=429, code=code or kind)
        if response.status_code == 400 and code in _MODERATION_CODES:
            return BackendInputError(cls.name, message, status=400, param="prompt", code=code)
        return None

    async def generate(
        self, requests: Sequence[GenerationRequest], on_step: StepCallback | None = None
    ) -> GenerationResult:
        """Generates one image per request (``n=1``: each request has its own prompt), run concurrently.

        Args:
            requests: The requests.
            on_step: Called with ``(done, len(requests))`` before the calls and after each; False cancels.

        Returns:
            The images, the requests' seeds (recorded, not honoured: the API takes none) and ``price_usd``.
        """
        self.check_batch(requests)
        start = time.perf_counter()
        images = await run_each(requests, self._generate_one, on_step)
        return GenerationResult(
            images=images,
            seeds=[request.seed for request in requests],
            timings={"total_s": time.perf_counter() - start},
            batch_size=len(requests),
            costs_usd=[self.cost(None)] * len(requests),
            backend=self.name,
        )

    async def _generate_one(self, request: GenerationRequest) -> Image.Image:
        fields: dict[str, Any] = {"model": self.model, "prompt": request.prompt, "n": 1}
        fields["size"] = f"{request.width}x{request.height}"
        if self._dalle:
            fields["response_format"] = "b64_json"  # GPT image models always answer base64 and refuse the field
        else:
            fields["output_format"] = "png"
        async with self.transport.slot():
            if request.mode == "img2img":
                if request.init_image is None:
                    raise InputError("init_image", None, "an image when mode is img2img")
                image = request.init_image.convert("RGB")
                files = {"image": ("image.png", image_bytes(image), "image/png")}
                data = {key: str(value) for key, value in fields.items()}
                response = await self.transport.request("POST", "/images/edits", data=data, files=files)
            else:
                response = await self.transport.request("POST", "/images/generations", json=fields)
        items = response.json().get("data") or []
        if not items:
            raise BackendUnavailable(self.name, "the API answered no image")
        if items[0].get("b64_json"):
            try:
                return await decode_image_async(base64.b64decode(items[0]["b64_json"], validate=True), self.name)
            except binascii.Error as exc:
                raise BackendUnavailable(self.name, "the API answered an image that is not base64") from exc
        if items[0].get("url"):
            return await decode_image_async(await self.transport.download(items[0]["url"]), self.name)
        raise BackendUnavailable(self.name, "the API answered no image")
