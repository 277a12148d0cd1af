"""Styles and themes: how a campaign's look changes a prompt.

A *theme* (:class:`ThemeData`) is data: prompt fragments, negatives, medium and lighting words, a palette,
generation settings, size presets per kind, the kinds it supports, named :class:`Variation` overrides,
:class:`Consistency` settings and :class:`ModerationRules`. A theme may name a ``parent``; resolution walks the
chain root first and flattens it into a :class:`Style`, which is what the composer applies:

- lists append down the chain (an exact duplicate is kept once, where it first appeared);
- scalars (medium, lighting, palette, kinds, each settings key, each size key, each consistency field)
  override, ``None`` inheriting;
- ``remove`` drops inherited fragments (positive or negative, exact text) before the theme adds its own;
- variations merge by name down the chain (a child's variation replaces its parent's of the same name), and
  the chosen one applies last;
- moderation ``allow``/``block`` lists append; the last theme to name a category decides it.

The resolved prompt template renders in a fixed order, which the Experimance pack relies on::

    "{prompt}, " + ", ".join(chain fragments, variation fragments, medium, lighting, palette words)

Everything here is pure (no I/O, no import-time work); :class:`ThemeError` and the parser's errors are
:class:`~pipelines.errors.InputError` so the edge answers them as a 422 naming the field.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NoReturn, TypeVar

from pipelines.errors import InputError
from pipelines.request import SCHEDULER_NAMES

__all__ = [
    "NAMED_COLOURS",
    "SETTINGS_KEYS",
    "Consistency",
    "FrozenDict",
    "ModerationRules",
    "Style",
    "ThemeData",
    "ThemeError",
    "Variation",
    "apply_style",
    "palette_words",
    "resolve_theme",
    "theme_chain",
    "theme_from_dict",
    "theme_to_dict",
]

SETTINGS_KEYS: Final = ("steps", "guidance", "scheduler")
"""The generation settings a theme (or variation) may set."""

NAMED_COLOURS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "black": "#000000",
        "charcoal": "#333333",
        "grey": "#808080",
        "silver": "#c0c0c0",
        "white": "#ffffff",
        "ivory": "#fffff0",
        "beige": "#f5f5dc",
        "tan": "#d2b48c",
        "sepia": "#704214",
        "brown": "#8b4513",
        "dark brown": "#4a2c17",
        "ochre": "#cc7722",
        "bronze": "#cd7f32",
        "old gold": "#cfb53b",
        "rust": "#b7410e",
        "red": "#ff0000",
        "crimson": "#dc143c",
        "maroon": "#800000",
        "burgundy": "#800020",
        "orange": "#ffa500",
        "gold": "#ffd700",
        "yellow": "#ffff00",
        "olive": "#808000",
        "dark olive": "#556b2f",
        "lime green": "#32cd32",
        "green": "#008000",
        "forest green": "#228b22",
        "emerald": "#50c878",
        "teal": "#008080",
        "turquoise": "#40e0d0",
        "cyan": "#00ffff",
        "sky blue": "#87ceeb",
        "steel blue": "#4682b4",
        "blue": "#0000ff",
        "navy": "#000080",
        "midnight blue": "#191970",
        "slate grey": "#708090",
        "indigo": "#4b0082",
        "purple": "#800080",
        "violet": "#ee82ee",
        "magenta": "#ff00ff",
        "pink": "#ffc0cb",
    }
)
"""The colour names palette words are drawn from (sRGB hex); a palette colour takes the nearest by CIELAB."""

_THEME_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_VARIATION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SIZE_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}(?:/[a-z0-9][a-z0-9_-]{0,31})?$")
_KIND = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_FRAGMENT_CHARS: Final = 300
_MAX_LIST: Final = 64
_MAX_TEXT_CHARS: Final = 2000
_MAX_SIDE: Final = 8192
_MAX_STEPS: Final = 1000
_MAX_GUIDANCE: Final = 100.0


_K = TypeVar("_K")
_V = TypeVar("_V")


class ThemeError(InputError):
    """A theme chain does not resolve: a missing parent, a cycle, too deep, or an unknown variation.

    ``param`` is ``"theme"``, ``"parent"`` or ``"variation"``.
    """


class FrozenDict(dict[_K, _V]):
    """A dict that refuses every change (``TypeError``), so a frozen dataclass holding one is immutable all
    the way down; unlike ``MappingProxyType`` it pickles (styles cross Ray handles), hashes, and is JSON-able.
    """

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is immutable")

    __setitem__ = _refuse  # type: ignore[assignment]
    __delitem__ = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]
    clear = _refuse  # type: ignore[assignment]
    pop = _refuse  # type: ignore[assignment]
    popitem = _refuse  # type: ignore[assignment]
    setdefault = _refuse  # type: ignore[assignment]
    update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[_K, _V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[_K, _V]:
        return self  # the values are immutable too (scalars, size tuples, frozen Variations)

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def _frozen_map() -> Mapping[str, Any]:
    return FrozenDict()


@dataclass(frozen=True)
class Consistency:
    """What keeps a theme's images alike; every field ``None`` inherits from the parent.

    Attributes:
        seed_base: Seed that variations and subjects draw from when a request names none.
        lock_palette: Palette words become "strictly limited palette of ..." instead of "colour palette of ...".
        reference_image: sha256 (lowercase hex) of a stored PNG used as the img2img start.
        reference_strength: How far img2img moves from the reference (0 < s <= 1).
    """

    seed_base: int | None = None
    lock_palette: bool | None = None
    reference_image: str | None = None
    reference_strength: float | None = None


@dataclass(frozen=True)
class ModerationRules:
    """A theme's changes to the deployment's content policy.

    Attributes:
        allow: Categories this theme permits although the deployment blocks them.
        block: Categories this theme blocks in addition.
    """

    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()


@dataclass(frozen=True)
class Variation:
    """A named partial override, applied after the whole chain.

    Attributes:
        fragments: Appended to the positive fragments.
        negative_fragments: Appended to the negative fragments.
        remove: Exact fragment texts (positive or negative) dropped from what the chain gave, before appending.
        medium: Replaces the medium words (None keeps them).
        lighting: Replaces the lighting words (None keeps them).
        palette: Replaces the palette, hex ``#rrggbb`` (None keeps it).
        settings: Per key override of ``steps``, ``guidance``, ``scheduler``.
        sizes: Per key override of size presets; a key is a kind (``portrait``) or ``kind/framing``
            (``portrait/bust``), a value ``(width, height)``.
    """

    fragments: tuple[str, ...] = ()
    negative_fragments: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    medium: str | None = None
    lighting: str | None = None
    palette: tuple[str, ...] | None = None
    settings: Mapping[str, object] = field(default_factory=_frozen_map)
    sizes: Mapping[str, tuple[int, int]] = field(default_factory=_frozen_map)


@dataclass(frozen=True)
class ThemeData:
    """One theme as stored: its own fields only, before inheritance.

    Attributes:
        name: Lowercase slug (letters, digits, ``-``), unique.
        description: What the theme is for.
        parent: The parent theme's name, or None for a root.
        fragments: Positive prompt fragments, appended to the parent's.
        negative_fragments: Negative prompt fragments, appended to the parent's.
        remove: Exact inherited fragment texts (positive or negative) to drop.
        medium: Medium words ("ink wash painting"); None inherits, "" clears.
        lighting: Lighting words; None inherits, "" clears.
        palette: Hex colours ``#rrggbb`` (stored lowercase); None inherits, ``()`` clears.
        settings: Per key override of ``steps``, ``guidance``, ``scheduler``.
        sizes: Per key override of size presets (see :class:`Variation`).
        kinds: The job kinds supported; None inherits (a root's None means every kind).
        variations: Named overrides; a child's variation replaces the parent's of the same name.
        consistency: Per field override of the consistency settings.
        moderation: Allow/block lists appended down the chain.
    """

    name: str
    description: str = ""
    parent: str | None = None
    fragments: tuple[str, ...] = ()
    negative_fragments: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    medium: str | None = None
    lighting: str | None = None
    palette: tuple[str, ...] | None = None
    settings: Mapping[str, object] = field(default_factory=_frozen_map)
    sizes: Mapping[str, tuple[int, int]] = field(default_factory=_frozen_map)
    kinds: tuple[str, ...] | None = None
    variations: Mapping[str, Variation] = field(default_factory=_frozen_map)
    consistency: Consistency = field(default_factory=Consistency)
    moderation: ModerationRules = field(default_factory=ModerationRules)


@dataclass(frozen=True)
class Style:
    """A resolved style: the flat form of a theme chain and a variation, ready to apply.

    Only ``name``, ``prompt_template``, ``negative_prompt`` and ``settings`` take part in
    :func:`apply_style`; the rest is what the composer and the overlay stage read (and what a preview shows).

    Attributes:
        name: Identifier, recorded with the image.
        prompt_template: Template with a ``{prompt}`` placeholder, e.g. ``"{prompt}, oil painting"``.
        negative_prompt: Appended to the request's negative prompt.
        settings: Generation defaults the style prefers (``steps``, ``guidance``, ``scheduler``); a
            request's explicit values win.
        fragments: The resolved positive fragments (chain, then variation).
        negative_fragments: The resolved negative fragments.
        medium: Medium words ("" for none).
        lighting: Lighting words ("" for none).
        palette: Hex colours, kept for the overlay stage (token rings, cards).
        sizes: Size presets by kind or ``kind/framing``.
        kinds: The kinds supported, None for every kind.
        consistency: The resolved consistency settings (fields still None where no theme set them).
        moderation: The final allow/block categories.
        variation: The variation applied, or None.
        variations: The variation names the chain offers.
        description: The nearest non-empty description down the chain.
    """

    name: str
    prompt_template: str = "{prompt}"
    negative_prompt: str = ""
    settings: dict[str, object] = field(default_factory=dict)
    fragments: tuple[str, ...] = ()
    negative_fragments: tuple[str, ...] = ()
    medium: str = ""
    lighting: str = ""
    palette: tuple[str, ...] = ()
    sizes: Mapping[str, tuple[int, int]] = field(default_factory=_frozen_map)
    kinds: tuple[str, ...] | None = None
    consistency: Consistency = field(default_factory=Consistency)
    moderation: ModerationRules = field(default_factory=ModerationRules)
    variation: str | None = None
    variations: tuple[str, ...] = ()
    description: str = ""


def apply_style(style: Style, prompt: str, negative_prompt: str) -> tuple[str, str]:
    """Returns ``(prompt, negative_prompt)`` with the style applied.

    Args:
        style: The style.
        prompt: The user's prompt.
        negative_prompt: The user's (or default) negative prompt.

    Raises:
        ValueError: The template has no ``{prompt}`` placeholder.
    """
    if "{prompt}" not in style.prompt_template:
        raise ValueError(f"style {style.name!r}: prompt_template must contain '{{prompt}}'")
    styled = style.prompt_template.replace("{prompt}", prompt.strip())
    negatives = [n for n in (negative_prompt.strip(), style.negative_prompt.strip()) if n]
    return styled, ", ".join(negatives)


# -- chains and resolution --------------------------------------------------------------------------------


def theme_chain(name: str, lookup: Callable[[str], ThemeData | None], max_depth: int = 8) -> list[ThemeData]:
    """The chain from the root down to the theme ``name``.

    Args:
        name: The theme to resolve.
        lookup: Finds a theme by name, None when there is none.
        max_depth: Most themes in a chain (the theme itself included).

    Returns:
        The themes, root first, ``name`` last.

    Raises:
        ThemeError: ``name`` is unknown (param ``theme``), a parent is missing, the chain has a cycle (the
            value names the path) or is longer than ``max_depth`` (param ``parent``).
    """
    theme = lookup(name)
    if theme is None:
        raise ThemeError("theme", name, "the name of an existing theme")
    chain = [theme]
    seen = {theme.name: 0}
    while theme.parent is not None:
        parent_name = theme.parent
        if parent_name in seen:
            cycle = " -> ".join([*(t.name for t in chain[seen[parent_name] :]), parent_name])
            raise ThemeError("parent", cycle, "a parent chain without cycles")
        if len(chain) >= max_depth:
            path = " -> ".join(t.name for t in chain)
            raise ThemeError("parent", path, f"a chain of at most {max_depth} themes")
        parent = lookup(parent_name)
        if parent is None:
            raise ThemeError("parent", parent_name, f"the name of an existing theme (parent of {theme.name!r})")
        seen[parent.name] = len(chain)
        chain.append(parent)
        theme = parent
    chain.reverse()
    return chain


def resolve_theme(chain: Sequence[ThemeData], variation: str | None = None) -> Style:
    """Flattens a chain (root first) and applies a variation.

    Args:
        chain: The themes from the root down, as :func:`theme_chain` returns them.
        variation: A variation name the chain offers, or None.

    Returns:
        The style, named after the last theme of the chain.

    Raises:
        ThemeError: The chain is empty (param ``theme``) or ``variation`` is not offered (param
            ``variation``, the allowed text listing the names).
    """
    if not chain:
        raise ThemeError("theme", [], "a chain of at least one theme")
    positive: list[str] = []
    negative: list[str] = []
    medium = ""
    lighting = ""
    palette: tuple[str, ...] = ()
    settings: dict[str, object] = {}
    sizes: dict[str, tuple[int, int]] = {}
    kinds: tuple[str, ...] | None = None
    variations: dict[str, Variation] = {}
    consistency: dict[str, Any] = {}
    rules: dict[str, bool] = {}  # category -> allowed; insertion order kept, last writer wins
    description = ""
    for theme in chain:
        _remove(positive, negative, theme.remove)
        _extend(positive, theme.fragments)
        _extend(negative, theme.negative_fragments)
        medium = medium if theme.medium is None else theme.medium
        lighting = lighting if theme.lighting is None else theme.lighting
        palette = palette if theme.palette is None else theme.palette
        settings.update(theme.settings)
        sizes.update(theme.sizes)
        kinds = kinds if theme.kinds is None else theme.kinds
        variations.update(theme.variations)
        for key in ("seed_base", "lock_palette", "reference_image", "reference_strength"):
            value = getattr(theme.consistency, key)
            if value is not None:
                consistency[key] = value
        for category in theme.moderation.allow:
            rules.pop(category, None)
            rules[category] = True
        for category in theme.moderation.block:
            rules.pop(category, None)
            rules[category] = False
        description = theme.description or description
    if variation is not None:
        chosen = variations.get(variation)
        if chosen is None:
            offered = ", ".join(sorted(variations)) or "none"
            raise ThemeError("variation", variation, f"a variation of {chain[-1].name!r}: {offered}")
        _remove(positive, negative, chosen.remove)
        _extend(positive, chosen.fragments)
        _extend(negative, chosen.negative_fragments)
        medium = medium if chosen.medium is None else chosen.medium
        lighting = lighting if chosen.lighting is None else chosen.lighting
        palette = palette if chosen.palette is None else chosen.palette
        settings.update(chosen.settings)
        sizes.update(chosen.sizes)
    resolved_consistency = Consistency(**consistency)
    words = palette_words(palette, bool(resolved_consistency.lock_palette)) if palette else ""
    parts = [*positive, medium, lighting, words]
    rendered = ", ".join(part for part in parts if part)
    return Style(
        name=chain[-1].name,
        prompt_template="{prompt}, " + rendered if rendered else "{prompt}",
        negative_prompt=", ".join(negative),
        settings=settings,
        fragments=tuple(positive),
        negative_fragments=tuple(negative),
        medium=medium,
        lighting=lighting,
        palette=palette,
        sizes=FrozenDict(sizes),
        kinds=kinds,
        consistency=resolved_consistency,
        moderation=ModerationRules(
            allow=tuple(c for c, allowed in rules.items() if allowed),
            block=tuple(c for c, allowed in rules.items() if not allowed),
        ),
        variation=variation,
        variations=tuple(variations),
        description=description,
    )


def _remove(positive: list[str], negative: list[str], remove: Sequence[str]) -> None:
    if remove:
        dropped = set(remove)
        positive[:] = [f for f in positive if f not in dropped]
        negative[:] = [f for f in negative if f not in dropped]


def _extend(target: list[str], fragments: Sequence[str]) -> None:
    for fragment in fragments:
        if fragment not in target:
            target.append(fragment)


# -- palette words ----------------------------------------------------------------------------------------


def palette_words(palette: Sequence[str], locked: bool) -> str:
    """Palette colours as prompt words, each the nearest :data:`NAMED_COLOURS` name (CIE76 distance in CIELAB).

    Args:
        palette: Hex colours ``#rrggbb``.
        locked: ``True`` renders "strictly limited palette of ...", otherwise "colour palette of ...".

    Returns:
        e.g. ``"colour palette of navy, gold and crimson"``; names repeat once; "" for an empty palette.

    Raises:
        InputError: A colour is not ``#rrggbb`` (param ``palette.<i>``).
    """
    names: list[str] = []
    for index, colour in enumerate(palette):
        if not isinstance(colour, str) or not _HEX.match(colour):
            raise InputError(f"palette[{index}]", colour, "a hex colour '#rrggbb'")
        name = _nearest_colour(colour.lower())
        if name not in names:
            names.append(name)
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return ("strictly limited palette of " if locked else "colour palette of ") + listed


@functools.lru_cache(maxsize=4096)
def _nearest_colour(colour: str) -> str:
    lab = _hex_to_lab(colour)
    return min(_named_labs(), key=lambda item: math.dist(lab, item[1]))[0]


@functools.cache
def _named_labs() -> tuple[tuple[str, tuple[float, float, float]], ...]:
    return tuple((name, _hex_to_lab(hex_colour)) for name, hex_colour in NAMED_COLOURS.items())


def _hex_to_lab(colour: str) -> tuple[float, float, float]:
    """sRGB hex to CIELAB (D65 white), per IEC 61966-2-1 and CIE 15."""

    def linear(channel: int) -> float:
        c = channel / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(colour[i : i + 2], 16)) for i in (1, 3, 5))
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


# -- parsing ----------------------------------------------------------------------------------------------

_VARIATION_KEYS: Final = (
    "fragments",
    "negative_fragments",
    "remove",
    "medium",
    "lighting",
    "palette",
    "settings",
    "sizes",
)
_THEME_KEYS: Final = (
    "name",
    "description",
    "parent",
    *_VARIATION_KEYS,
    "kinds",
    "variations",
    "consistency",
    "moderation",
)
_CONSISTENCY_KEYS: Final = ("seed_base", "lock_palette", "reference_image", "reference_strength")
_MODERATION_KEYS: Final = ("allow", "block")


def theme_from_dict(data: Mapping[str, Any]) -> ThemeData:
    """Parses a theme from plain data (JSON or YAML), strictly.

    Args:
        data: The keys of :class:`ThemeData`; lists for tuples, ``[width, height]`` for sizes, mappings for
            ``settings``, ``sizes``, ``variations``, ``consistency`` and ``moderation``.

    Returns:
        The theme (palette colours lowercased, text stripped).

    Raises:
        InputError: An unknown key (param = the key, dotted when nested), a wrong type, an empty or overlong
            fragment, a colour that is not ``#rrggbb``, a size that is not two positive multiples of 8, a
            settings key other than ``steps``/``guidance``/``scheduler`` or a value of the wrong type, a
            scheduler not in :data:`pipelines.request.SCHEDULER_NAMES`, a category both allowed and blocked.
    """
    _mapping(data, "theme")
    _known_keys(data, _THEME_KEYS, "")
    name = data.get("name")
    if not isinstance(name, str) or not _THEME_NAME.match(name):
        raise InputError("name", name, "lowercase letters, digits and '-', at most 64, starting alphanumeric")
    parent = data.get("parent")
    if parent is not None and (not isinstance(parent, str) or not _THEME_NAME.match(parent)):
        raise InputError("parent", parent, "null or the name of another theme")
    description = _text(data.get("description", ""), "description", _MAX_TEXT_CHARS) or ""
    kinds = data.get("kinds")
    if kinds is not None:
        kinds = _strings(kinds, "kinds", _KIND, "a job kind name (lowercase slug)")
        if not kinds:
            raise InputError("kinds", [], "null (every kind) or at least one kind")
    raw_variations = _mapping(data.get("variations", {}), "variations")
    variations: dict[str, Variation] = {}
    for key, value in raw_variations.items():
        if not isinstance(key, str) or not _VARIATION_NAME.match(key):
            raise InputError(f"variations.{key}", key, "a variation name (lowercase letters, digits, '-', '_')")
        variations[key] = _variation(value, f"variations.{key}")
    return ThemeData(
        name=name,
        description=description,
        parent=parent,
        variations=FrozenDict(variations),
        kinds=kinds,
        consistency=_consistency(data.get("consistency", {})),
        moderation=_moderation(data.get("moderation", {})),
        **_variation_fields(data, ""),
    )


def theme_to_dict(theme: ThemeData) -> dict[str, Any]:
    """The JSON-able form of a theme, every key present; :func:`theme_from_dict` of it equals ``theme``.

    Args:
        theme: The theme.

    Returns:
        Plain data: str, int, float, bool, None, lists and dicts.
    """
    return {
        "name": theme.name,
        "description": theme.description,
        "parent": theme.parent,
        **_variation_to_dict(theme),
        "kinds": None if theme.kinds is None else list(theme.kinds),
        "variations": {name: _variation_to_dict(v) for name, v in theme.variations.items()},
        "consistency": {key: getattr(theme.consistency, key) for key in _CONSISTENCY_KEYS},
        "moderation": {"allow": list(theme.moderation.allow), "block": list(theme.moderation.block)},
    }


def _variation_to_dict(source: Variation | ThemeData) -> dict[str, Any]:
    return {
        "fragments": list(source.fragments),
        "negative_fragments": list(source.negative_fragments),
        "remove": list(source.remove),
        "medium": source.medium,
        "lighting": source.lighting,
        "palette": None if source.palette is None else list(source.palette),
        "settings": dict(source.settings),
        "sizes": {key: [w, h] for key, (w, h) in source.sizes.items()},
    }


def _variation(data: Any, prefix: str) -> Variation:
    _mapping(data, prefix)
    _known_keys(data, _VARIATION_KEYS, prefix + ".")
    return Variation(**_variation_fields(data, prefix + "."))


def _variation_fields(data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    palette = data.get("palette")
    if palette is not None:
        palette = tuple(c.lower() for c in _strings(palette, prefix + "palette", _HEX, "a hex colour '#rrggbb'"))
    return {
        "fragments": _fragments(data.get("fragments", ()), prefix + "fragments"),
        "negative_fragments": _fragments(data.get("negative_fragments", ()), prefix + "negative_fragments"),
        "remove": _fragments(data.get("remove", ()), prefix + "remove"),
        "medium": _text(data.get("medium"), prefix + "medium", _MAX_FRAGMENT_CHARS),
        "lighting": _text(data.get("lighting"), prefix + "lighting", _MAX_FRAGMENT_CHARS),
        "palette": palette,
        "settings": _settings(data.get("settings", {}), prefix + "settings"),
        "sizes": _sizes(data.get("sizes", {}), prefix + "sizes"),
    }


def _mapping(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(param, value, "a mapping")
    return value


def _known_keys(data: Mapping[str, Any], keys: Sequence[str], prefix: str) -> None:
    for key in data:
        if key not in keys:
            raise InputError(f"{prefix}{key}", data[key], f"a known key: one of {', '.join(keys)}")


def _list(value: Any, param: str) -> Sequence[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InputError(param, value, "a list")
    if len(value) > _MAX_LIST:
        raise InputError(param, value, f"at most {_MAX_LIST} entries")
    return value


def _text(value: Any, param: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(param, value, "a string")
    text = value.strip()
    if len(text) > limit:
        raise InputError(param, value, f"at most {limit} characters")
    if "{prompt}" in text:
        raise InputError(param, value, "text without the '{prompt}' placeholder")
    return text


def _fragments(value: Any, param: str) -> tuple[str, ...]:
    out: list[str] = []
    for index, item in enumerate(_list(value, param)):
        text = _text(item, f"{param}[{index}]", _MAX_FRAGMENT_CHARS)
        if not text:
            raise InputError(f"{param}[{index}]", item, "a non-empty string")
        out.append(text)
    return tuple(out)


def _strings(value: Any, param: str, pattern: re.Pattern[str], allowed: str) -> tuple[str, ...]:
    out: list[str] = []
    for index, item in enumerate(_list(value, param)):
        if not isinstance(item, str) or not pattern.match(item):
            raise InputError(f"{param}[{index}]", item, allowed)
        out.append(item)
    return tuple(out)


def _settings(value: Any, param: str) -> Mapping[str, object]:
    data = _mapping(value, param)
    _known_keys(data, SETTINGS_KEYS, param + ".")
    steps = data.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= _MAX_STEPS):
        raise InputError(f"{param}.steps", steps, f"an integer from 1 to {_MAX_STEPS}")
    guidance = data.get("guidance")
    if guidance is not None and (
        isinstance(guidance, bool)
        or not isinstance(guidance, int | float)
        or not math.isfinite(guidance)
        or not 0 <= guidance <= _MAX_GUIDANCE
    ):
        raise InputError(f"{param}.guidance", guidance, f"a number from 0 to {_MAX_GUIDANCE}")
    scheduler = data.get("scheduler")
    if scheduler is not None and scheduler not in SCHEDULER_NAMES:
        raise InputError(f"{param}.scheduler", scheduler, f"one of {list(SCHEDULER_NAMES)}")
    out: dict[str, object] = {}
    if steps is not None:
        out["steps"] = steps
    if guidance is not None:
        out["guidance"] = float(guidance)
    if scheduler is not None:
        out["scheduler"] = scheduler
    return FrozenDict(out)


def _sizes(value: Any, param: str) -> Mapping[str, tuple[int, int]]:
    data = _mapping(value, param)
    out: dict[str, tuple[int, int]] = {}
    for key, size in data.items():
        if not isinstance(key, str) or not _SIZE_KEY.match(key):
            raise InputError(f"{param}.{key}", key, "a kind or 'kind/framing' (lowercase slugs)")
        ok = (
            not isinstance(size, str)
            and isinstance(size, Sequence)
            and len(size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and 8 <= s <= _MAX_SIDE and s % 8 == 0 for s in size)
        )
        if not ok:
            raise InputError(f"{param}.{key}", size, f"[width, height], positive multiples of 8 up to {_MAX_SIDE}")
        out[key] = (size[0], size[1])
    return FrozenDict(out)


def _consistency(value: Any) -> Consistency:
    data = _mapping(value, "consistency")
    _known_keys(data, _CONSISTENCY_KEYS, "consistency.")
    seed = data.get("seed_base")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise InputError("consistency.seed_base", seed, "null or an integer from 0 to 2**63 - 1")
    locked = data.get("lock_palette")
    if locked is not None and not isinstance(locked, bool):
        raise InputError("consistency.lock_palette", locked, "null, true or false")
    image = data.get("reference_image")
    if image is not None and (not isinstance(image, str) or not _SHA256.match(image)):
        raise InputError("consistency.reference_image", image, "null or a sha256 (64 lowercase hex digits)")
    strength = data.get("reference_strength")
    if strength is not None and (
        isinstance(strength, bool) or not isinstance(strength, int | float) or not 0 < strength <= 1
    ):
        raise InputError("consistency.reference_strength", strength, "null or a number in (0, 1]")
    return Consistency(
        seed_base=seed,
        lock_palette=locked,
        reference_image=image,
        reference_strength=None if strength is None else float(strength),
    )


def _moderation(value: Any) -> ModerationRules:
    data = _mapping(value, "moderation")
    _known_keys(data, _MODERATION_KEYS, "moderation.")
    category = "a content category name (lowercase slug)"
    allow = _strings(data.get("allow", ()), "moderation.allow", _CATEGORY, category)
    block = _strings(data.get("block", ()), "moderation.block", _CATEGORY, category)
    both = sorted(set(allow) & set(block))
    if both:
        raise InputError("moderation.block", both, "categories not also in moderation.allow")
    return ModerationRules(allow=tuple(dict.fromkeys(allow)), block=tuple(dict.fromkeys(block)))
