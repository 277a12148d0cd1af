"""The composer deployment: turns what a user asked for into what the generator runs.

The logic is :func:`pipelines.prompts.compose`; this class holds the configured defaults and gives every
request a seed and an id. Themes plug in through the ``style`` argument of ``compose`` (the theme service
resolves a theme id to a :class:`pipelines.styles.Style`).
"""

from __future__ import annotations

import secrets
import uuid

from ray import serve

from pipelines.prompts import Defaults, PartialRequest, compose, compose_figure, request_hash
from pipelines.styles import Style
from serve_app.config import ComposerConfig, LimitsConfig
from serve_app.schemas import ComposedRequest, FigureCompose

__all__ = ["Composer"]


@serve.deployment(name="Composer")
class Composer:
    """Fills defaults, sizes and seeds, and hashes the result.

    Args:
        config: The ``composer`` section of the app config.
        model: Name of the generator's model (part of the request hash).
        limits: The generator's request bounds (``generator.limits``): what breaks them is refused here, at
            acceptance, rather than by the generator after the job was queued. The defaults when None.
    """

    def __init__(self, config: ComposerConfig, model: str, limits: LimitsConfig | None = None) -> None:
        self._defaults = Defaults(
            width=config.width,
            height=config.height,
            steps=config.steps,
            guidance=config.guidance,
            scheduler=config.scheduler,
            negative_prompt=config.negative_prompt,
            base_pixels=config.base_pixels,
            model=model,
        )
        self._presets = {name: (p.width, p.height) for name, p in config.presets.items()}
        self._limits = (limits or LimitsConfig()).generation_limits()

    async def compose(self, partial: PartialRequest | FigureCompose, style: Style | None = None) -> ComposedRequest:
        """Builds the generation request for ``partial`` (a generic request, or a portrait, creature or item
        with its seed), with ``style`` (a resolved theme) applied.

        Raises:
            InputError: A field is out of range; the error names it.
        """
        if isinstance(partial, FigureCompose):
            request = compose_figure(
                partial.figure,
                style,
                self._defaults,
                partial.seed,
                self._limits,
                width=partial.width,
                height=partial.height,
            )
        else:
            seed = secrets.randbelow(2**32)
            request = compose(
                partial, self._defaults, seed=seed, presets=self._presets, style=style, limits=self._limits
            )
        return ComposedRequest(request=request, request_hash=request_hash(request), request_id=uuid.uuid4().hex)
