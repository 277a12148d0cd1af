"""Prompt and settings composition: from what a user asked for to a full :class:`GenerationRequest`.

- :mod:`~pipelines.prompts.generic`: the plain request (``PartialRequest``, ``compose``, the request hash).
- :mod:`~pipelines.prompts.specs`: the figure specs (portrait, creature, item) and their rule tables.
- :mod:`~pipelines.prompts.figures`: the figure templates and their composition with a theme.
- :mod:`~pipelines.prompts.budget`: how much of a prompt the text encoders read.

Everything the former ``pipelines/prompts.py`` module exported is re-exported here, so
``from pipelines.prompts import compose`` keeps working.
"""

from pipelines.prompts.budget import Budget, budget_warnings, count_tokens, prompt_budget
from pipelines.prompts.figures import (
    FigurePrompt,
    Spec,
    compose_figure,
    creature_prompt,
    family_seeds,
    figure_prompt,
    item_prompt,
    portrait_prompt,
    with_descriptors,
)
from pipelines.prompts.generic import (
    HASH_VERSION,
    Defaults,
    PartialRequest,
    compose,
    fit_aspect_ratio,
    request_hash,
)
from pipelines.prompts.specs import (
    Character,
    Creature,
    CreatureSpec,
    FigureCommon,
    Item,
    ItemSpec,
    Magic,
    PortraitSpec,
)

__all__ = [
    "HASH_VERSION",
    "Budget",
    "Character",
    "Creature",
    "CreatureSpec",
    "Defaults",
    "FigureCommon",
    "FigurePrompt",
    "Item",
    "ItemSpec",
    "Magic",
    "PartialRequest",
    "PortraitSpec",
    "Spec",
    "budget_warnings",
    "compose",
    "compose_figure",
    "count_tokens",
    "creature_prompt",
    "family_seeds",
    "figure_prompt",
    "fit_aspect_ratio",
    "item_prompt",
    "portrait_prompt",
    "prompt_budget",
    "request_hash",
    "with_descriptors",
]
