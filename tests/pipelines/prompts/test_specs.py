"""Figure specs: check() names the field by its dotted HTTP path and lists an enumeration's allowed values."""

from __future__ import annotations

import dataclasses

import pytest

from pipelines import encode
from pipelines.errors import InputError
from pipelines.prompts.specs import (
    CREATURE_TYPES,
    FORMATS,
    ITEM_LENGTHS_CM,
    RARITIES,
    RARITY,
    SIZE_CATEGORY,
    SIZES,
    Character,
    Creature,
    CreatureSpec,
    FigureCommon,
    Item,
    ItemSpec,
    Magic,
    PortraitSpec,
    item_length_cm,
)

MIRA = Character(name="Mira", ancestry="elf", role="ranger")


def _error(spec: object) -> InputError:
    with pytest.raises(InputError) as info:
        spec.check()  # type: ignore[attr-defined]
    return info.value


def _allowed(error: InputError) -> list[str]:
    assert error.allowed.startswith("one of ")
    return error.allowed.removeprefix("one of ").split(", ")


def test_good_specs_pass() -> None:
    PortraitSpec(
        MIRA, equipment=("longbow",), pose="drawing a bow", framing="full", background="a misty forest"
    ).check()
    PortraitSpec(Character(), common=FigureCommon(subject_key="campaign-7/mira")).check()
    CreatureSpec(Creature("undead", "Huge", features=("rotting wings",)), framing=None, token=True).check()
    magic = Magic(element="frost", glow="pale blue", runes=True)
    ItemSpec(Item("weapon", "longsword", magic=magic, wear="broken", rarity="very rare"), "coin", card=True).check()


def test_srd_tables_are_complete() -> None:
    # The 14 creature types of the SRD (5.1), written out independently of the module.
    srd = "aberration beast celestial construct dragon elemental fey fiend giant humanoid monstrosity ooze plant undead"
    assert sorted(CREATURE_TYPES) == srd.split()
    assert SIZES == ("Tiny", "Small", "Medium", "Large", "Huge", "Gargantuan")
    # Token sides from the 5e size table (TTRPG_RULES.md 3.1): Tiny half a cell ... Gargantuan 4x4.
    assert [SIZE_CATEGORY[s].token_cells for s in SIZES] == [0.5, 1, 1, 2, 3, 4]
    assert set(RARITY) == set(RARITIES) and len(RARITIES) == 6
    for words, colour in RARITY.values():
        assert words and len(colour) == 7 and int(colour[1:], 16) >= 0
    assert set(FORMATS) == set(encode.FORMATS)


@pytest.mark.parametrize(
    ("spec", "param", "allowed"),
    [
        (PortraitSpec(MIRA, framing="closeup"), "framing", ["headshot", "bust", "half", "full"]),
        (CreatureSpec(Creature("goblin")), "creature.type", sorted(CREATURE_TYPES)),
        (CreatureSpec(Creature("beast", "Enormous")), "creature.size", list(SIZES)),
        (CreatureSpec(Creature("beast"), framing="wide"), "framing", ["headshot", "bust", "half", "full"]),
        (
            ItemSpec(Item("sword")),
            "item.category",
            sorted(["weapon", "armor", "shield", "potion", "scroll", "ring", "wand", "staff", "wondrous"]),
        ),
        (ItemSpec(Item("weapon", wear="new")), "item.wear", ["pristine", "used", "worn", "damaged", "broken"]),
        (
            ItemSpec(Item("weapon", rarity="epic")),
            "item.rarity",
            ["common", "uncommon", "rare", "very rare", "legendary", "artifact"],
        ),
        (ItemSpec(Item("weapon"), size_reference="banana"), "size_reference", ["none", "hand", "coin", "ruler"]),
        (ItemSpec(Item("weapon"), common=FigureCommon(format="gif")), "format", ["png", "webp", "jpeg"]),
    ],
)
def test_unknown_enum_values_name_the_field_and_list_allowed(spec: object, param: str, allowed: list[str]) -> None:
    error = _error(spec)
    assert error.param == param
    assert sorted(_allowed(error)) == sorted(allowed)


def test_enum_values_are_case_sensitive_as_documented() -> None:
    assert _error(CreatureSpec(Creature("beast", "huge"))).param == "creature.size"
    assert _error(ItemSpec(Item("weapon", rarity="Rare"))).param == "item.rarity"


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (PortraitSpec(Character(name="Mira", ancestry="e" * 201)), "character.ancestry"),
        (PortraitSpec(Character(name="x" * 201)), "character.name"),
        (PortraitSpec(Character(name="Mira", features=("scar",) * 13)), "character.features"),
        (PortraitSpec(Character(name="Mira", features=("scar", " "))), "character.features[1]"),
        (PortraitSpec(Character(name="Mira", features=("scar", ","))), "character.features[1]"),
        (PortraitSpec(MIRA, equipment=("bow", "h" * 201)), "equipment[1]"),
        (PortraitSpec(MIRA, pose="p" * 201), "pose"),
        (PortraitSpec(MIRA, background="  "), "background"),
        (PortraitSpec(MIRA, background="b" * 201), "background"),
        (PortraitSpec(Character()), "character"),
        (PortraitSpec(Character(name="  ")), "character"),
        (CreatureSpec(Creature("beast", habitat="h" * 201)), "creature.habitat"),
        (CreatureSpec(Creature("beast", features=(3,))), "creature.features[0]"),  # type: ignore[arg-type]
        (CreatureSpec(Creature("beast"), token="yes"), "token"),  # type: ignore[arg-type]
        (ItemSpec(Item("weapon", materials=("steel",) * 13)), "item.materials"),
        (ItemSpec(Item("weapon", magic=Magic(element="e" * 201))), "item.magic.element"),
        (ItemSpec(Item("weapon", magic=Magic(runes="many"))), "item.magic.runes"),  # type: ignore[arg-type]
        (ItemSpec(Item("weapon", type="t" * 201)), "item.type"),
    ],
)
def test_bad_fields_name_the_dotted_path(spec: object, param: str) -> None:
    assert _error(spec).param == param


def test_text_at_the_limit_passes() -> None:
    PortraitSpec(Character(name="x" * 200, features=("f",) * 12), equipment=("e",) * 12).check()


@pytest.mark.parametrize(
    ("common", "param"),
    [
        (FigureCommon(variations=0), "variations"),
        (FigureCommon(variations=9), "variations"),
        (FigureCommon(variations=True), "variations"),
        (FigureCommon(seed=-1), "seed"),
        (FigureCommon(seed=2**32), "seed"),
        (FigureCommon(subject_key="Campaign/Mira"), "subject_key"),
        (FigureCommon(subject_key="campaign 7/mira"), "subject_key"),
        (FigureCommon(subject_key="campaign-7/"), "subject_key"),
        (FigureCommon(subject_key="/mira"), "subject_key"),
        (FigureCommon(subject_key="a//b"), "subject_key"),
        (FigureCommon(subject_key="a" * 129), "subject_key"),
        (FigureCommon(negative_prompt="n" * 1001), "negative_prompt"),
        (FigureCommon(width=0), "width"),
        (FigureCommon(height=-8), "height"),
    ],
)
def test_common_fields(common: FigureCommon, param: str) -> None:
    assert _error(PortraitSpec(MIRA, common=common)).param == param


@pytest.mark.parametrize("key", ["campaign-7/mira", "mira", "a/b/c_d", "c" * 128, "x1/y2"])
def test_good_subject_keys(key: str) -> None:
    PortraitSpec(MIRA, common=FigureCommon(subject_key=key, variations=8, seed=2**32 - 1)).check()


def test_specs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MIRA.name = "Tam"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("category", "type_", "length"),
    [
        ("weapon", "longsword", 105.0),
        ("weapon", "long sword", 105.0),  # spaces dropped
        ("weapon", "frost longsword", 105.0),  # a known word of it
        ("weapon", "Greatsword", 150.0),
        ("weapon", "dagger", 35.0),
        ("weapon", "flamberge", 90.0),  # unknown type: the category's
        ("weapon", None, 90.0),
        ("potion", "potion of healing", 15.0),
        ("ring", "ring of protection", 2.2),
        ("staff", "staff of the magi", 180.0),
        ("wand", None, 35.0),
        ("scroll", None, 30.0),
        ("shield", "tower shield", 75.0),
        ("armor", "plate armor", 70.0),
        ("wondrous", "boots of speed", 30.0),  # the thing before "of"
    ],
)
def test_item_lengths(category: str, type_: str | None, length: float) -> None:
    assert item_length_cm(category, type_) == length
    assert Item(category, type_).length_cm == length


def test_every_category_has_a_length() -> None:
    for category in ("weapon", "armor", "shield", "potion", "scroll", "ring", "wand", "staff", "wondrous"):
        assert ITEM_LENGTHS_CM[category] > 0
