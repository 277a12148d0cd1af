"""Typed specs of the figure kinds: portraits, creatures (NPCs and monsters) and items, and their rule tables.

Each spec is a frozen dataclass with ``check()``, which raises :class:`~pipelines.errors.InputError` naming the
field by its dotted HTTP path (``character.ancestry``, ``item.rarity``, ``framing``, ``variations``) and, for an
enumeration, listing the allowed values (``allowed`` is ``"one of headshot, bust, half, full"``), so the edge's
422 tells a client what it could have sent.

What every figure request shares (theme, variation, seed, variations, negative prompt additions, format,
subject key, explicit size) is one :class:`FigureCommon` in each spec's ``common`` field, so a door builds it
once and the job frame reads it the same way for every kind.

The tables (rarity words and colours, typical item lengths, size categories, framings) are the rules the
prompt templates (:mod:`pipelines.prompts.figures`) and the drawing (:mod:`pipelines.overlay.figures`) read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from pipelines.errors import InputError

__all__ = [
    "BACKGROUNDS",
    "CREATURE_SIZES",
    "CREATURE_TYPES",
    "FORMATS",
    "FRAMING",
    "FRAMINGS",
    "ITEM_CATEGORIES",
    "ITEM_LENGTHS_CM",
    "KEY_COLOUR",
    "MAX_LIST",
    "MAX_SUBJECT_KEY",
    "MAX_TEXT",
    "MAX_VARIATIONS",
    "RARITIES",
    "RARITY",
    "REFERENCE_LENGTHS_CM",
    "SIZES",
    "SIZE_CATEGORY",
    "SIZE_REFERENCES",
    "WEAR",
    "Character",
    "Creature",
    "CreatureSpec",
    "FigureCommon",
    "Framing",
    "Item",
    "ItemSpec",
    "Magic",
    "PortraitSpec",
    "SizeCategory",
    "item_length_cm",
]

MAX_TEXT: Final = 200
"""Longest free-text field, in characters."""
MAX_LIST: Final = 12
"""Most entries in a list field (features, equipment, materials)."""
MAX_VARIATIONS: Final = 8
"""Most images in one job's seed family."""
MAX_NEGATIVE: Final = 1000
"""Longest negative prompt addition, in characters."""
MAX_SUBJECT_KEY: Final = 128
"""Longest subject key, in characters."""

# -- enumerations ----------------------------------------------------------------------------------------

FRAMINGS: Final = ("headshot", "bust", "half", "full")
"""How much of the subject the picture shows, closest first."""
BACKGROUNDS: Final = ("plain", "transparent-ready")
"""Named portrait backgrounds; any other text is a scene description."""
KEY_COLOUR: Final = "#00ff00"
"""The flat key colour of a ``transparent-ready`` background: pure chroma green, the easiest to key out of
skin, hair and cloth. The prompt asks for it in words; the result data states it as ``key_colour``."""
CREATURE_TYPES: Final = (
    "aberration",
    "beast",
    "celestial",
    "construct",
    "dragon",
    "elemental",
    "fey",
    "fiend",
    "giant",
    "humanoid",
    "monstrosity",
    "ooze",
    "plant",
    "undead",
)
"""The 14 creature types of the D&D 5e SRD."""
SIZES: Final = ("Tiny", "Small", "Medium", "Large", "Huge", "Gargantuan")
"""The 5e size categories, smallest first (spelt as the rules spell them)."""
CREATURE_SIZES: Final = SIZES
"""Alias of :data:`SIZES`."""
ITEM_CATEGORIES: Final = ("weapon", "armor", "shield", "potion", "scroll", "ring", "wand", "staff", "wondrous")
WEAR: Final = ("pristine", "used", "worn", "damaged", "broken")
"""An item's condition, best first."""
RARITIES: Final = ("common", "uncommon", "rare", "very rare", "legendary", "artifact")
SIZE_REFERENCES: Final = ("none", "hand", "coin", "ruler")
"""Scale cues drawn beside an item (``none``: no cue)."""
FORMATS: Final = ("png", "webp", "jpeg")
"""Encodings a figure job can answer in (the keys of ``pipelines.encode.FORMATS``)."""

# -- tables ----------------------------------------------------------------------------------------------

RARITY: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "common": ("common, plain craftsmanship", "#9d9d9d"),
        "uncommon": ("uncommon, fine craftsmanship", "#1eff00"),
        "rare": ("rare, masterwork, intricate detail", "#0070dd"),
        "very rare": ("very rare, exquisite ornate craftsmanship", "#a335ee"),
        "legendary": ("legendary, ornate masterpiece", "#ff8000"),
        "artifact": ("ancient artifact, otherworldly, mythic power", "#e6cc80"),
    }
)
"""Rarity → (quality words for the prompt, rarity colour ``#rrggbb``).

The colours follow the loot-colour convention players already read at a glance: grey, green, blue, purple,
orange, and a pale gold for artifacts. The item card's band is drawn in it."""

ITEM_LENGTHS_CM: Final[Mapping[str, float]] = MappingProxyType(
    {
        # by type: a word of the item's ``type`` (or the whole type, spaces and hyphens removed)
        "dagger": 35.0,
        "knife": 25.0,
        "shortsword": 75.0,
        "sword": 90.0,
        "longsword": 105.0,
        "bastardsword": 120.0,
        "greatsword": 150.0,
        "rapier": 110.0,
        "scimitar": 90.0,
        "sickle": 45.0,
        "handaxe": 40.0,
        "axe": 80.0,
        "battleaxe": 80.0,
        "greataxe": 120.0,
        "hammer": 40.0,
        "warhammer": 75.0,
        "maul": 130.0,
        "mace": 65.0,
        "flail": 80.0,
        "club": 70.0,
        "greatclub": 110.0,
        "quarterstaff": 180.0,
        "spear": 200.0,
        "trident": 160.0,
        "javelin": 150.0,
        "glaive": 220.0,
        "halberd": 230.0,
        "pike": 400.0,
        "lance": 300.0,
        "whip": 150.0,
        "bow": 120.0,
        "shortbow": 100.0,
        "longbow": 180.0,
        "crossbow": 80.0,
        "arrow": 75.0,
        "helmet": 30.0,
        "helm": 30.0,
        "gauntlet": 30.0,
        "gauntlets": 30.0,
        "breastplate": 55.0,
        "buckler": 35.0,
        "amulet": 6.0,
        "pendant": 5.0,
        "necklace": 45.0,
        "bracers": 25.0,
        "belt": 100.0,
        "cloak": 120.0,
        "robe": 140.0,
        "boots": 30.0,
        "gloves": 25.0,
        "orb": 12.0,
        "crown": 20.0,
        "tome": 30.0,
        "book": 25.0,
        "lantern": 35.0,
        "bag": 45.0,
        "horn": 40.0,
        "flask": 15.0,
        "vial": 8.0,
        # by category: the fallback
        "weapon": 90.0,
        "armor": 70.0,
        "shield": 75.0,
        "potion": 15.0,
        "scroll": 30.0,
        "ring": 2.2,
        "wand": 35.0,
        "staff": 180.0,
        "wondrous": 20.0,
    }
)
"""Typical real length of an item (its longest side), in cm: its type's when known, else its category's.

Rough, from period examples and the rulebooks' descriptions: enough for a scale cue to read true (a ring is
a fingertip, a staff is taller than the hand is long by ten)."""

REFERENCE_LENGTHS_CM: Final[Mapping[str, float]] = MappingProxyType({"hand": 19.0, "coin": 2.4, "ruler": 30.0})
"""The real length of each scale cue: an adult hand from wrist to fingertip, a coin's diameter, a ruler."""


@dataclass(frozen=True)
class Framing:
    """What a framing asks of the camera.

    Attributes:
        aspect_ratio: ``"W:H"`` of the picture when no theme preset applies.
        portrait: Camera words for a character.
        creature: Camera words for a creature.
    """

    aspect_ratio: str
    portrait: str
    creature: str


FRAMING: Final[Mapping[str, Framing]] = MappingProxyType(
    {
        "headshot": Framing("1:1", "close-up headshot, face in focus", "close-up shot"),
        "bust": Framing("4:5", "bust portrait, head and shoulders", "medium close-up shot"),
        "half": Framing("2:3", "half-length portrait, waist up", "medium shot"),
        "full": Framing("9:16", "full-body portrait, head to toe", "full body shot, whole body in frame"),
    }
)
"""Framing → aspect ratio and camera words (headshot 1:1, bust 4:5, half 2:3, full 9:16)."""


@dataclass(frozen=True)
class SizeCategory:
    """What a creature's size category changes in its picture.

    Attributes:
        framing: The framing when the request names none (small creatures closer, big ones wide).
        scale: The scale cue words, relative to a human (the size word itself is in the subject: "a huge dragon").
        wide_ratio: The aspect ratio of a ``full`` framing for this size (None: the framing's own); big
            creatures are wider than they are tall in a frame that also shows their surroundings.
        token_cells: Its token's side in grid cells (Tiny 0.5, Small and Medium 1, Large 2, Huge 3,
            Gargantuan 4: the 5e size table).
    """

    framing: str
    scale: str
    wide_ratio: str | None
    token_cells: float


SIZE_CATEGORY: Final[Mapping[str, SizeCategory]] = MappingProxyType(
    {
        "Tiny": SizeCategory("headshot", "small enough to sit in a human palm", None, 0.5),
        "Small": SizeCategory("bust", "about knee height to a human", None, 1.0),
        "Medium": SizeCategory("full", "human-sized", None, 1.0),
        "Large": SizeCategory("full", "twice the height of a human", "1:1", 2.0),
        "Huge": SizeCategory("full", "towering over a human figure, wide shot", "4:3", 3.0),
        "Gargantuan": SizeCategory(
            "full", "colossal, a tiny human figure at its feet for scale, epic wide shot", "16:9", 4.0
        ),
    }
)
"""Size category → default framing, scale cue, wide aspect ratio and token size."""

_SUBJECT_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?(?:/[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?)*$")
_WORD = re.compile(r"[a-z]+")


def item_length_cm(category: str, type_: str | None = None) -> float:
    """The typical length of an item: the table's entry for its whole ``type_`` (spaces and hyphens dropped:
    "long sword" is a longsword), else for the last word of it the table knows ("frost longsword"), else its
    ``category``'s.

    Raises:
        KeyError: ``category`` is not one of :data:`ITEM_CATEGORIES` and the type is unknown.
    """
    text = (type_ or "").lower()
    compact = re.sub(r"[\s-]+", "", text)
    if compact in ITEM_LENGTHS_CM:
        return ITEM_LENGTHS_CM[compact]
    head = text.split(" of ")[0]  # "staff of the magi", "boots of speed": the thing is before "of"
    for word in reversed(_WORD.findall(head)):
        if word in ITEM_LENGTHS_CM:
            return ITEM_LENGTHS_CM[word]
    return ITEM_LENGTHS_CM[category]


# -- checks ----------------------------------------------------------------------------------------------


def _text(value: object, param: str, limit: int = MAX_TEXT) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InputError(param, value, f"text of at most {limit} characters")
    if len(value) > limit:
        raise InputError(param, f"<{len(value)} characters>", f"text of at most {limit} characters")


def _texts(values: object, param: str) -> None:
    if not isinstance(values, tuple | list):
        raise InputError(param, values, f"a list of at most {MAX_LIST} texts")
    if len(values) > MAX_LIST:
        raise InputError(param, f"<{len(values)} entries>", f"at most {MAX_LIST} entries")
    for i, value in enumerate(values):
        _text(value, f"{param}[{i}]")
        if not value or not value.strip() or not value.strip(" ,;"):  # type: ignore[union-attr]
            raise InputError(f"{param}[{i}]", value, "non-empty text")


def _one_of(value: object, allowed: tuple[str, ...], param: str) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise InputError(param, value, f"one of {', '.join(allowed)}")


def _flag(value: object, param: str) -> None:
    if not isinstance(value, bool):
        raise InputError(param, value, "true or false")


@dataclass(frozen=True)
class FigureCommon:
    """What every figure request takes besides its subject.

    Attributes:
        theme: A theme reference (name or id, optional ``@version``); None for no theme.
        variation: One of the theme's variations.
        seed: The family's first seed; image ``i`` uses ``seed + i`` (see ``family_seeds``). None: the
            subject's recorded seed, else the theme's seed base, else a random one.
        variations: How many images (1 to 8): one seed family, one job, one batch.
        negative_prompt: Added to the kind's and the theme's negatives.
        format: Encoding the client wants back, one of :data:`FORMATS`.
        subject_key: Ties requests to one subject (``campaign-7/mira``): lowercase slugs joined by ``/``.
        width: Explicit width (wins over the theme's and the framing's size).
        height: Explicit height.
    """

    theme: str | None = None
    variation: str | None = None
    seed: int | None = None
    variations: int = 1
    negative_prompt: str | None = None
    format: str = "png"
    subject_key: str | None = None
    width: int | None = None
    height: int | None = None

    def check(self) -> None:
        """Raises :class:`InputError` naming the first field out of range (``variations``, ``subject_key``...)."""
        if not isinstance(self.variations, int) or isinstance(self.variations, bool):
            raise InputError("variations", self.variations, f"an integer from 1 to {MAX_VARIATIONS}")
        if not 1 <= self.variations <= MAX_VARIATIONS:
            raise InputError("variations", self.variations, f"an integer from 1 to {MAX_VARIATIONS}")
        if self.seed is not None and (
            not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32
        ):
            raise InputError("seed", self.seed, "an integer from 0 to 2**32 - 1")
        if self.subject_key is not None and (
            not isinstance(self.subject_key, str)
            or len(self.subject_key) > MAX_SUBJECT_KEY
            or not _SUBJECT_KEY.match(self.subject_key)
        ):
            raise InputError(
                "subject_key",
                self.subject_key,
                f"lowercase slugs (a-z, 0-9, '-', '_') joined by '/', such as 'campaign-7/mira', "
                f"at most {MAX_SUBJECT_KEY} characters",
            )
        _text(self.negative_prompt, "negative_prompt", MAX_NEGATIVE)
        _one_of(self.format, FORMATS, "format")
        _text(self.theme, "theme", 140)
        _text(self.variation, "variation", 64)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise InputError(name, value, "a positive integer (a multiple of 8)")


@dataclass(frozen=True)
class Character:
    """Who is portrayed. Every field is optional, but a portrait needs something to go on (see
    :meth:`PortraitSpec.check`); the appearance fields are what a subject key records and reuses.

    Attributes:
        name: What they are called ("Mira").
        ancestry: Their people ("elf", "dwarf", "tiefling").
        role: Class or role ("ranger", "innkeeper").
        age: Words ("young adult", "elderly") or a number of years.
        build: "lean", "stocky"...
        skin: "pale", "freckled olive"...
        hair: "silver braid", "shaved head"...
        eyes: "green", "milky white"...
        features: Distinguishing features ("scar across the left cheek").
        expression: "determined", "laughing"... (not recorded: it changes from picture to picture).
    """

    name: str | None = None
    ancestry: str | None = None
    role: str | None = None
    age: str | None = None
    build: str | None = None
    skin: str | None = None
    hair: str | None = None
    eyes: str | None = None
    features: tuple[str, ...] = ()
    expression: str | None = None

    def check(self, prefix: str = "character") -> None:
        """Raises :class:`InputError` for a field too long (``character.hair``) or not text."""
        for name in ("name", "ancestry", "role", "age", "build", "skin", "hair", "eyes", "expression"):
            _text(getattr(self, name), f"{prefix}.{name}")
        _texts(self.features, f"{prefix}.features")

    def is_empty(self) -> bool:
        """Whether no field says anything."""
        return not any(
            (v.strip() if isinstance(v, str) else v)
            for v in (
                self.name,
                self.ancestry,
                self.role,
                self.age,
                self.build,
                self.skin,
                self.hair,
                self.eyes,
                self.features,
                self.expression,
            )
        )


@dataclass(frozen=True)
class PortraitSpec:
    """A character portrait.

    Attributes:
        character: Who.
        equipment: What they carry or wear ("longbow", "hooded cloak").
        pose: "drawing a bow", "arms crossed"...; None looks at the viewer.
        framing: One of :data:`FRAMINGS`; picks the size preset and the camera words.
        background: ``plain``, ``transparent-ready`` (a flat :data:`KEY_COLOUR` to key out) or a scene.
        common: Theme, seed, variations and the rest.
    """

    character: Character
    equipment: tuple[str, ...] = ()
    pose: str | None = None
    framing: str = "bust"
    background: str = "plain"
    common: FigureCommon = field(default_factory=FigureCommon)

    def check(self) -> None:
        """Raises :class:`InputError` naming the first bad field by its HTTP path.

        A character with nothing in it is refused (``character``) unless a ``subject_key`` may fill it.
        """
        self.character.check()
        if self.character.is_empty() and self.common.subject_key is None:
            raise InputError(
                "character", {}, "at least one of name, ancestry, role, features... (or a subject_key recorded before)"
            )
        _texts(self.equipment, "equipment")
        _text(self.pose, "pose")
        _one_of(self.framing, FRAMINGS, "framing")
        _text(self.background, "background")
        if not isinstance(self.background, str) or not self.background.strip(" ,;\t\n"):
            raise InputError("background", self.background, f"one of {', '.join(BACKGROUNDS)} or a scene description")
        self.common.check()


@dataclass(frozen=True)
class Creature:
    """An NPC or a monster.

    Attributes:
        type: One of the SRD :data:`CREATURE_TYPES`.
        size: One of :data:`SIZES`; drives the default framing and the scale cue.
        name: "Grix the goblin boss", "frost wyrm"...
        features: "six glowing eyes", "moss-covered bark"...
        habitat: "volcanic caves", "a frozen tundra"...
        pose: "coiled to strike"...
    """

    type: str
    size: str = "Medium"
    name: str | None = None
    features: tuple[str, ...] = ()
    habitat: str | None = None
    pose: str | None = None

    def check(self, prefix: str = "creature") -> None:
        """Raises :class:`InputError` naming the first bad field (``creature.type`` lists the 14 types)."""
        _one_of(self.type, CREATURE_TYPES, f"{prefix}.type")
        _one_of(self.size, SIZES, f"{prefix}.size")
        for name in ("name", "habitat", "pose"):
            _text(getattr(self, name), f"{prefix}.{name}")
        _texts(self.features, f"{prefix}.features")


@dataclass(frozen=True)
class CreatureSpec:
    """A creature picture.

    Attributes:
        creature: What.
        framing: One of :data:`FRAMINGS`; None takes the size category's (:data:`SIZE_CATEGORY`).
        token: Also a round VTT token per image.
        common: Theme, seed, variations and the rest.
    """

    creature: Creature
    framing: str | None = None
    token: bool = False
    common: FigureCommon = field(default_factory=FigureCommon)

    def check(self) -> None:
        """Raises :class:`InputError` naming the first bad field by its HTTP path."""
        self.creature.check()
        if self.framing is not None:
            _one_of(self.framing, FRAMINGS, "framing")
        _flag(self.token, "token")
        self.common.check()


@dataclass(frozen=True)
class Magic:
    """An item's enchantment.

    Attributes:
        element: "frost", "fire", "necrotic"...
        glow: Glow colour words ("pale blue").
        runes: Glowing runes engraved on it.
    """

    element: str | None = None
    glow: str | None = None
    runes: bool = False

    def check(self, prefix: str = "item.magic") -> None:
        """Raises :class:`InputError` naming the first bad field."""
        _text(self.element, f"{prefix}.element")
        _text(self.glow, f"{prefix}.glow")
        _flag(self.runes, f"{prefix}.runes")


@dataclass(frozen=True)
class Item:
    """An item.

    Attributes:
        category: One of :data:`ITEM_CATEGORIES`.
        type: The specific thing ("longsword", "tower shield", "potion of healing").
        name: Its proper name ("Frostbite").
        materials: "blued steel", "silver filigree"...
        magic: Its enchantment, None for a mundane item.
        wear: One of :data:`WEAR`.
        rarity: One of :data:`RARITIES`; quality words and the card colour (:data:`RARITY`).
    """

    category: str
    type: str | None = None
    name: str | None = None
    materials: tuple[str, ...] = ()
    magic: Magic | None = None
    wear: str = "used"
    rarity: str = "common"

    def check(self, prefix: str = "item") -> None:
        """Raises :class:`InputError` naming the first bad field (``item.rarity`` lists the rarities)."""
        _one_of(self.category, ITEM_CATEGORIES, f"{prefix}.category")
        _text(self.type, f"{prefix}.type")
        _text(self.name, f"{prefix}.name")
        _texts(self.materials, f"{prefix}.materials")
        if self.magic is not None:
            if not isinstance(self.magic, Magic):
                raise InputError(f"{prefix}.magic", self.magic, "an object with element, glow and runes")
            self.magic.check(f"{prefix}.magic")
        _one_of(self.wear, WEAR, f"{prefix}.wear")
        _one_of(self.rarity, RARITIES, f"{prefix}.rarity")

    @property
    def length_cm(self) -> float:
        """Its typical real length (:func:`item_length_cm`)."""
        return item_length_cm(self.category, self.type)


@dataclass(frozen=True)
class ItemSpec:
    """An item illustration, optionally with a scale cue and an item card.

    Attributes:
        item: What.
        size_reference: One of :data:`SIZE_REFERENCES`: a cue drawn beside the item at scale.
        card: Also an item card (name and a band in the rarity colour).
        common: Theme, seed, variations and the rest.
    """

    item: Item
    size_reference: str = "none"
    card: bool = False
    common: FigureCommon = field(default_factory=FigureCommon)

    def check(self) -> None:
        """Raises :class:`InputError` naming the first bad field by its HTTP path."""
        self.item.check()
        _one_of(self.size_reference, SIZE_REFERENCES, "size_reference")
        _flag(self.card, "card")
        self.common.check()
