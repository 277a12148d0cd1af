"""Prompt templates of the figure kinds, and their composition with a theme. Pure functions.

:func:`figure_prompt` turns a spec (:mod:`pipelines.prompts.specs`) into a :class:`FigurePrompt`: the subject
prompt before any theme, the kind's negatives, the aspect ratio and theme size keys its framing asks for, the
subject's appearance descriptors and extra result data. :func:`compose_figure` applies a resolved theme
(:class:`~pipelines.styles.Style`) and the deployment defaults to make the
:class:`~pipelines.request.GenerationRequest`.

The templates read like SDXL prompts: comma-separated fragments, subject first, then appearance, then
camera and background, so that what matters most falls inside CLIP's 77-token window. Empty fields are
skipped; the output is deterministic and has no empty fragments, doubled commas or stray spaces.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from pipelines.prompts.generic import Defaults, fit_aspect_ratio
from pipelines.prompts.specs import (
    FRAMING,
    KEY_COLOUR,
    RARITY,
    REFERENCE_LENGTHS_CM,
    SIZE_CATEGORY,
    Character,
    CreatureSpec,
    ItemSpec,
    Magic,
    PortraitSpec,
)
from pipelines.request import GenerationLimits, GenerationRequest
from pipelines.styles import Style, apply_style

__all__ = [
    "CREATURE_TYPE_WORDS",
    "KIND_NEGATIVES",
    "PORTRAIT_DESCRIPTORS",
    "FigurePrompt",
    "Spec",
    "compose_figure",
    "creature_prompt",
    "family_seeds",
    "figure_prompt",
    "item_prompt",
    "portrait_prompt",
    "with_descriptors",
]

Spec = PortraitSpec | CreatureSpec | ItemSpec

KIND_NEGATIVES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "portrait": "deformed face, asymmetric eyes, extra fingers, bad anatomy, text, watermark",
        "creature": "bad anatomy, extra limbs, malformed, text, watermark, blurry",
        "item": "hands, people, multiple objects, cluttered background, text, watermark, blurry",
    }
)
"""The negatives every request of a kind gets (before the request's additions and the theme's)."""

CREATURE_TYPE_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "aberration": "aberration, alien and unnatural anatomy",
        "beast": "beast",
        "celestial": "celestial being, radiant and divine",
        "construct": "construct, an animated artificial being",
        "dragon": "dragon",
        "elemental": "elemental, a being of living elemental matter",
        "fey": "fey creature, uncanny and otherworldly",
        "fiend": "fiend, infernal and menacing",
        "giant": "giant",
        "humanoid": "humanoid",
        "monstrosity": "monstrosity",
        "ooze": "ooze, a formless amorphous creature",
        "plant": "plant creature",
        "undead": "undead creature",
    }
)
"""SRD creature type → the noun phrase (and a hint of the look) the prompt uses for it."""

PORTRAIT_DESCRIPTORS: Final = ("name", "ancestry", "role", "age", "build", "skin", "hair", "eyes", "features")
"""The character fields a subject key records (the expression and pose change from picture to picture)."""

LIST_SEPARATOR: Final = "; "
"""Joins a list field (features, materials) into one descriptor string."""

_WEAR_WORDS: Final = {
    "pristine": "pristine condition",
    "used": "lightly used",
    "worn": "worn and scuffed",
    "damaged": "damaged and dented",
    "broken": "broken and cracked",
}
_TRANSPARENT_NEGATIVES: Final = "scenery, gradient background, cast shadow"
_MASS_NOUNS: Final = frozenset({"armor", "armour", "mail", "chainmail", "plate", "leather", "clothing", "gear"})
_SPACES = re.compile(r"\s+")
_SYNONYMS: Final[Mapping[str, frozenset[str]]] = {
    "hair": frozenset(
        "haired beard bearded bald shaved mohawk locks mane dreadlocks moustache mustache ponytail".split()
    ),
    "skin": frozenset("skinned scales scaled scaly fur furred feathers feathered hide complexion".split()),
    "eyes": frozenset("eye eyed".split()),
    "build": frozenset("built physique".split()),
    "expression": frozenset(
        "smile smiling grin grinning frown frowning scowl scowling smirk smirking sneer sneering laughing "
        "glare glaring look face".split()
    ),
}


@dataclass(frozen=True)
class FigurePrompt:
    """A figure spec as a prompt, before the theme.

    Attributes:
        kind: ``portrait``, ``creature`` or ``item``.
        prompt: The subject prompt.
        negative_prompt: The request's additions, then the kind's negatives.
        aspect_ratio: ``"W:H"`` from the framing (and, for big creatures, the size).
        size_keys: Theme size-preset keys to try, most specific first (``portrait/bust``, ``portrait``).
        descriptors: The subject's appearance as strings (what a ``subject_key`` records and reuses; list
            fields joined by :data:`LIST_SEPARATOR`).
        data: Extra result data: portraits ``framing``, ``background`` and, for a transparent-ready one,
            ``key_colour``; creatures ``framing``, ``size_category``, ``token_cells``; items ``rarity``,
            ``rarity_colour``, ``item_length_cm``, ``name`` (when given) and, with a scale cue,
            ``reference`` and ``reference_length_cm``.
    """

    kind: str
    prompt: str
    negative_prompt: str
    aspect_ratio: str
    size_keys: tuple[str, ...]
    descriptors: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


# -- text helpers ----------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip(" ,;")


def _join(*parts: str | None) -> str:
    """Comma-joins the non-empty parts; every fragment is stripped and empty ones (",," included) dropped."""
    fragments = (_clean(f) for p in parts if p for f in p.split(","))
    return ", ".join(f for f in fragments if f)


def _dedupe(text: str) -> str:
    """``text``'s comma fragments with later case-insensitive repeats dropped."""
    seen: set[str] = set()
    out = []
    for fragment in (_clean(f) for f in text.split(",")):
        if fragment and fragment.lower() not in seen:
            seen.add(fragment.lower())
            out.append(fragment)
    return ", ".join(out)


def _article(phrase: str) -> str:
    """``phrase`` with "a"/"an" in front (a letter heuristic: "an elf", "a half-orc", "a unicorn")."""
    word = phrase.split(" ", 1)[0].lower()
    vowel = word[:1] in ("a", "e", "i", "o", "u") and not word.startswith(("uni", "use", "one", "eu"))
    return f"{'an' if vowel or word.startswith(('hour', 'honest', 'heir')) else 'a'} {phrase}"


def _with_article(phrase: str) -> str:
    """Like :func:`_article`, but a plural or mass noun ("boots of speed", "plate armor") takes none."""
    head = phrase.lower().split(" of ")[0].split()
    noun = head[-1] if head else ""
    plural = noun.endswith("s") and not noun.endswith(("ss", "us", "is"))
    return phrase if plural or noun in _MASS_NOUNS else _article(phrase)


def _noun(value: str | None, noun: str) -> str | None:
    """``"silver"`` → ``"silver hair"``; a value that already says the noun or a word standing for it
    ("braided hair", "red beard", "a wry smile") is kept as it is."""
    if not value or not value.strip():
        return None
    value = _clean(value)
    words = set(re.findall(r"[a-z]+", value.lower()))
    return value if words & ({noun} | _SYNONYMS.get(noun, frozenset())) else f"{value} {noun}"


def _listing(items: Iterable[str]) -> str:
    """``["a", "b", "c"]`` → ``"a, b and c"``."""
    words = [_clean(i) for i in items if _clean(i)]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1] if words else ""


def _split(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(LIST_SEPARATOR.strip()) if p.strip())


# -- templates -------------------------------------------------------------------------------------------


def _background(background: str) -> tuple[str, str | None, dict[str, Any]]:
    """(prompt words, extra negatives, data) of a portrait background."""
    if background == "plain":
        return "plain background", None, {"background": "plain"}
    if background == "transparent-ready":
        words = "isolated on a plain flat pure green background, chroma key"
        return words, _TRANSPARENT_NEGATIVES, {"background": "transparent-ready", "key_colour": KEY_COLOUR}
    return f"{_clean(background)} in the background", None, {"background": "scene"}


def _age(age: str | None) -> str | None:
    if not age or not age.strip():
        return None
    age = _clean(age)
    return f"{age} years old" if age.isdigit() else age


def portrait_prompt(spec: PortraitSpec) -> FigurePrompt:
    """The portrait template: who, how they look, what they carry, pose, camera, background.

    ``Character(name="Mira", ancestry="elf", role="ranger", age="young adult", build="lean")`` in a bust
    gives ``"portrait of Mira, an elf ranger, young adult, lean build, looking at viewer, bust portrait,
    head and shoulders, plain background"``.
    """
    c = spec.character
    identity = " ".join(_clean(p) for p in (c.ancestry, c.role) if p and _clean(p))
    name = _clean(c.name) if c.name else ""
    if name and identity:
        who = f"portrait of {name}, {_article(identity)}"
    elif name or identity:
        who = f"portrait of {name or _article(identity)}"
    else:
        who = "portrait of a character"
    framing = FRAMING[spec.framing]
    background, background_negative, data = _background(spec.background)
    prompt = _join(
        who,
        _age(c.age),
        _noun(c.build, "build"),
        _noun(c.skin, "skin"),
        _noun(c.hair, "hair"),
        _noun(c.eyes, "eyes"),
        *c.features,
        _noun(c.expression, "expression"),
        spec.equipment and "equipped with " + _listing(spec.equipment),
        spec.pose if spec.pose and _clean(spec.pose) else "looking at viewer",
        framing.portrait,
        background,
    )
    descriptors = {
        k: _clean(getattr(c, k)) for k in PORTRAIT_DESCRIPTORS[:-1] if getattr(c, k) and _clean(getattr(c, k))
    }
    if c.features:
        descriptors["features"] = LIST_SEPARATOR.join(_clean(f) for f in c.features)
    return FigurePrompt(
        kind="portrait",
        prompt=prompt,
        negative_prompt=_join(spec.common.negative_prompt, KIND_NEGATIVES["portrait"], background_negative),
        aspect_ratio=framing.aspect_ratio,
        size_keys=(f"portrait/{spec.framing}", "portrait"),
        descriptors=descriptors,
        data={"framing": spec.framing, **data},
    )


def _habitat(habitat: str | None) -> str | None:
    if not habitat or not _clean(habitat):
        return None
    habitat = _clean(habitat)
    return f"in {habitat}" if habitat.lower().startswith(("a ", "an ", "the ")) else f"in the {habitat}"


def creature_prompt(spec: CreatureSpec) -> FigurePrompt:
    """The creature template: the size category picks the default framing, the scale cue and, for a big
    creature seen whole, a wide aspect ratio (Large 1:1, Huge 4:3, Gargantuan 16:9).

    ``Creature(type="dragon", size="Huge", name="Vermithrax")`` gives ``"Vermithrax, a huge dragon, towering
    over a human figure, wide shot, full body shot, whole body in frame"``.
    """
    c = spec.creature
    size = SIZE_CATEGORY[c.size]
    framing = spec.framing or size.framing
    size_word = "" if c.size == "Medium" else c.size.lower() + " "
    subject = _article(f"{size_word}{CREATURE_TYPE_WORDS[c.type]}")
    name = _clean(c.name) if c.name else ""
    wide = framing == "full" and size.wide_ratio is not None
    prompt = _join(
        f"{name}, {subject}" if name else subject,
        *c.features,
        _habitat(c.habitat),
        c.pose,
        size.scale,
        FRAMING[framing].creature,
        "centred composition, facing the viewer" if spec.token else None,
    )
    descriptors = {"type": c.type, "size": c.size}
    if name:
        descriptors["name"] = name
    if c.features:
        descriptors["features"] = LIST_SEPARATOR.join(_clean(f) for f in c.features)
    size_keys = (f"creature/{c.size.lower()}",) if wide else ()
    return FigurePrompt(
        kind="creature",
        prompt=prompt,
        negative_prompt=_join(spec.common.negative_prompt, KIND_NEGATIVES["creature"]),
        aspect_ratio=size.wide_ratio if wide else FRAMING[framing].aspect_ratio,  # type: ignore[arg-type]
        size_keys=(*size_keys, f"creature/{framing}", "creature"),
        descriptors=descriptors,
        data={"framing": framing, "size_category": c.size, "token_cells": size.token_cells},
    )


def _magic_words(magic: Magic | None) -> str | None:
    if magic is None:
        return None
    words = _join(
        magic.element and f"imbued with {_clean(magic.element)} magic",
        magic.glow and (_clean(magic.glow) if "glow" in magic.glow.lower() else f"glowing {_clean(magic.glow)}"),
        "engraved with glowing runes" if magic.runes else None,
    )
    return words or "faint magical aura"


def item_prompt(spec: ItemSpec) -> FigurePrompt:
    """The item template: what it is, its materials, magic, wear, the rarity's quality words, and a
    composition the overlay stage can rely on (one object on a plain background; upright and filling the
    frame's height when a scale cue is drawn beside it).

    ``Item(category="weapon", type="longsword", name="Frostbite", rarity="rare")`` gives ``"item illustration
    of Frostbite, a longsword, lightly used, rare, masterwork, intricate detail, single object, centred, plain
    background"``.
    """
    i = spec.item
    quality, colour = RARITY[i.rarity]
    what = _with_article(_clean(i.type) if i.type and _clean(i.type) else i.category)
    name = _clean(i.name) if i.name else ""
    composition = (
        "single object standing upright, spanning the full frame height"
        if spec.size_reference != "none"
        else "single object, centred"
    )
    prompt = _join(
        f"item illustration of {name}, {what}" if name else f"item illustration of {what}",
        i.materials and "made of " + _listing(i.materials),
        _magic_words(i.magic),
        _WEAR_WORDS[i.wear],
        quality,
        composition,
        "plain background",
    )
    data: dict[str, Any] = {"rarity": i.rarity, "rarity_colour": colour, "item_length_cm": i.length_cm}
    if name:
        data["name"] = name
    if spec.size_reference != "none":
        data["reference"] = spec.size_reference
        data["reference_length_cm"] = REFERENCE_LENGTHS_CM[spec.size_reference]
    descriptors = {"category": i.category}
    if name:
        descriptors["name"] = name
    if i.type and _clean(i.type):
        descriptors["type"] = _clean(i.type)
    if i.materials:
        descriptors["materials"] = LIST_SEPARATOR.join(_clean(m) for m in i.materials)
    if i.magic is not None:
        descriptors["magic.element"] = _clean(i.magic.element or "")
        descriptors["magic.glow"] = _clean(i.magic.glow or "")
        descriptors["magic.runes"] = "true" if i.magic.runes else "false"
    return FigurePrompt(
        kind="item",
        prompt=prompt,
        negative_prompt=_join(spec.common.negative_prompt, KIND_NEGATIVES["item"]),
        aspect_ratio="1:1",
        size_keys=(f"item/{i.category}", "item"),
        descriptors=descriptors,
        data=data,
    )


def figure_prompt(spec: Spec) -> FigurePrompt:
    """The prompt of any figure spec (dispatch on its type).

    Raises:
        TypeError: ``spec`` is not a portrait, creature or item spec.
    """
    if isinstance(spec, PortraitSpec):
        return portrait_prompt(spec)
    if isinstance(spec, CreatureSpec):
        return creature_prompt(spec)
    if isinstance(spec, ItemSpec):
        return item_prompt(spec)
    raise TypeError(f"not a figure spec: {type(spec).__name__}")


# -- subjects --------------------------------------------------------------------------------------------


def with_descriptors(spec: Spec, recorded: Mapping[str, str]) -> Spec:
    """``spec`` with the appearance fields it left empty filled from a subject's record.

    What the request gives wins field by field; a list field (features, materials) is filled only when the
    request gives none. Portraits fill :data:`PORTRAIT_DESCRIPTORS`; creatures their name and features (type
    and size are always given); items their name, type, materials and, when the request has none, magic.

    Args:
        spec: The request's spec.
        recorded: A subject's descriptors, as :attr:`FigurePrompt.descriptors` gave them.

    Returns:
        A new spec (``spec`` itself when nothing was filled).
    """

    def text(key: str) -> str | None:
        value = recorded.get(key)
        return value if isinstance(value, str) and value.strip() else None

    def empty(value: object) -> bool:
        return not (value.strip() if isinstance(value, str) else value)

    if isinstance(spec, PortraitSpec):
        c: Character = spec.character
        fill: dict[str, Any] = {
            k: text(k) for k in PORTRAIT_DESCRIPTORS[:-1] if empty(getattr(c, k)) and text(k) is not None
        }
        if not c.features and text("features"):
            fill["features"] = _split(text("features") or "")
        return dataclasses.replace(spec, character=dataclasses.replace(c, **fill)) if fill else spec
    if isinstance(spec, CreatureSpec):
        creature = spec.creature
        fill = {}
        if empty(creature.name) and text("name"):
            fill["name"] = text("name")
        if not creature.features and text("features"):
            fill["features"] = _split(text("features") or "")
        return dataclasses.replace(spec, creature=dataclasses.replace(creature, **fill)) if fill else spec
    if isinstance(spec, ItemSpec):
        item = spec.item
        fill = {}
        for key in ("name", "type"):
            if empty(getattr(item, key)) and text(key):
                fill[key] = text(key)
        if not item.materials and text("materials"):
            fill["materials"] = _split(text("materials") or "")
        if item.magic is None and "magic.runes" in recorded:
            fill["magic"] = Magic(
                element=text("magic.element"), glow=text("magic.glow"), runes=recorded["magic.runes"] == "true"
            )
        return dataclasses.replace(spec, item=dataclasses.replace(item, **fill)) if fill else spec
    raise TypeError(f"not a figure spec: {type(spec).__name__}")


def family_seeds(base: int, n: int) -> list[int]:
    """The seeds of a family of ``n`` images: ``base``, ``base + 1``, ... modulo 2**32."""
    return [(base + i) % 2**32 for i in range(n)]


# -- composition -----------------------------------------------------------------------------------------


def _other_side(side: int, ratio: float) -> int:
    return max(8, round(side * ratio / 8) * 8)


def compose_figure(
    figure: FigurePrompt,
    style: Style | None,
    defaults: Defaults,
    seed: int,
    limits: GenerationLimits | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
) -> GenerationRequest:
    """The generation request of a figure under a theme.

    Size: explicit ``width`` and ``height`` > the theme's preset for the first of ``figure.size_keys`` it has
    > ``figure.aspect_ratio`` fitted to ``defaults.base_pixels``. One explicit side alone keeps the aspect
    of what would have been chosen (the other side rounded to a multiple of 8).

    Prompt: the theme's template around the subject prompt. Negative: the figure's, the deployment default's,
    then the theme's, with repeated fragments dropped. Settings (steps, guidance, scheduler): the theme's,
    each one falling back to the defaults.

    Args:
        figure: The subject prompt (:func:`figure_prompt`).
        style: The resolved theme, or None.
        defaults: The deployment defaults (size budget, settings, default negative, model).
        seed: This image's seed (one of :func:`family_seeds`).
        limits: The generator's bounds; the defaults when None.
        width: Explicit width.
        height: Explicit height.

    Raises:
        InputError: The request breaks ``limits``; the error names the field.
    """
    sizes: Mapping[str, tuple[int, int]] = style.sizes if style is not None else {}
    preset = next((tuple(sizes[k]) for k in figure.size_keys if k in sizes), None)
    base_w, base_h = preset or fit_aspect_ratio(figure.aspect_ratio, defaults.base_pixels)
    if width is not None and height is not None:
        w, h = width, height
    elif width is not None:
        w, h = width, _other_side(width, base_h / base_w)
    elif height is not None:
        w, h = _other_side(height, base_w / base_h), height
    else:
        w, h = base_w, base_h
    prompt, negative = figure.prompt, _join(figure.negative_prompt, defaults.negative_prompt)
    if style is not None:
        prompt, negative = apply_style(style, prompt, negative)
    settings: Mapping[str, object] = style.settings if style is not None else {}
    request = GenerationRequest(
        prompt=prompt,
        negative_prompt=_dedupe(negative),
        width=w,
        height=h,
        steps=int(settings.get("steps", defaults.steps)),  # type: ignore[call-overload]
        guidance=float(settings.get("guidance", defaults.guidance)),  # type: ignore[arg-type]
        seed=seed,
        scheduler=str(settings.get("scheduler", defaults.scheduler)),
        model=defaults.model,
    )
    request.check(limits or GenerationLimits())
    return request
