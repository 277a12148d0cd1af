"""Content moderation: categories, obfuscations, clean tabletop prompts, combos, errors and policy files.

Expectations are written out by hand (which category a prompt belongs to, which field an error names), never
taken from the module's own output.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelines.moderation as moderation
from pipelines.errors import InputError
from pipelines.moderation import (
    Category,
    Combo,
    ModerationError,
    Policy,
    load_policy,
    moderate,
    policy_from_dict,
    scan,
)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def matched(policy: Policy, text: str) -> set[str]:
    return set(scan({"prompt": text}, policy).matched)


def test_exports_exist_and_are_documented() -> None:
    for name in moderation.__all__:
        assert getattr(moderation, name).__doc__, name


def test_packaged_policy_shape(policy: Policy) -> None:
    assert set(policy.categories) >= {"sexual", "minors", "gore", "horror", "hate", "self_harm"}
    assert policy.default_block == ("sexual", "hate", "self_harm")
    combos = {combo.name: set(combo.groups) for combo in policy.combos}
    assert combos["sexual_minors"] == {"minors", "sexual"}
    for category in policy.categories.values():
        assert 10 <= len(category.words) + len(category.phrases) <= 40, category.name


def test_patterns_compile_lazily_once() -> None:
    policy = load_policy()
    assert "_patterns" not in vars(policy)  # nothing compiled by loading
    scan({"prompt": "a dragon"}, policy)
    compiled = vars(policy)["_patterns"]
    scan({"prompt": "a knight"}, policy)
    assert vars(policy)["_patterns"] is compiled


# --- every category in plain text ---------------------------------------------------------------------------

PLAIN = [
    ("sexual", "a nude elf lounging by a river"),
    ("sexual", "an erotic painting in the duke's bedroom"),
    ("minors", "a toddler holding a wooden sword"),
    ("minors", "a little girl feeding a griffon"),
    ("gore", "a decapitated goblin at the city gate"),
    ("gore", "entrails spilling from a gutted troll"),
    ("horror", "a zombie horde shambling through the village"),
    ("horror", "a corpse lying in the crypt"),
    ("hate", "a banner with a swastika"),
    ("hate", "soldiers shouting heil hitler"),
    ("self_harm", "a warrior with self harm scars"),
    ("self_harm", "a note saying i will kill myself"),
]


@pytest.mark.parametrize(("category", "text"), PLAIN)
def test_every_category_is_caught_in_plain_text(policy: Policy, category: str, text: str) -> None:
    assert category in matched(policy, text)
    with pytest.raises(ModerationError) as caught:
        moderate({"scene": text}, policy, block=[category])
    assert (caught.value.param, caught.value.category) == ("scene", category)


# --- obfuscations ----------------------------------------------------------------------------------------------

OBFUSCATED = [
    ("SeXy ElF", "sexual"),  # case
    ("a s e x scene", "sexual"),  # spaced letters
    ("s.e.x", "sexual"),
    ("s-e-x", "sexual"),
    ("s_e_x", "sexual"),
    ("se-x", "sexual"),  # separator mid-word
    ("s3x", "sexual"),  # leet 3 → e
    ("$exy", "sexual"),  # leet $ → s
    ("5exy", "sexual"),  # leet 5 → s
    ("p0rn", "sexual"),  # leet 0 → o
    ("nud3s", "sexual"),
    ("seeexy", "sexual"),  # repeated letters
    ("b00000bs", "sexual"),
    ("!!sex!!", "sexual"),
    ("\uff53\uff45\uff58\uff59", "sexual"),  # full-width "sexy"
    ("s\u200be\u200dx", "sexual"),  # zero-width space and joiner
    ("s\u00adex", "sexual"),  # soft hyphen
    ("s\u0336e\u0336x\u0336", "sexual"),  # combining strike-through
    ("s\u00e9x", "sexual"),  # accented e
    ("\u0455\u0435\u0445", "sexual"),  # Cyrillic dze, ie, ha
    ("\U0001d42c\U0001d41e\U0001d431", "sexual"),  # mathematical bold
    ("l0li", "minors"),
    ("1oli", "minors"),  # 1 → l
    ("ch1ld", "minors"),  # 1 → i
    ("k1ds", "minors"),
    ("pre-teen", "minors"),
    ("sch00lg1rl", "minors"),
    ("d3capitated", "gore"),
    ("DiSeMbOwElLeD", "gore"),
    ("mutilating", "gore"),  # final e dropped before -ing
    ("d e m o n", "horror"),
    ("z0mbies", "horror"),
    ("sw@stika", "hate"),
    ("h e i l  h i t l e r", "hate"),
    ("K K K", "hate"),
    ("self-harm", "self_harm"),
    ("selfharm", "self_harm"),
    ("s.e.l.f h.a.r.m", "self_harm"),
    ("cutting myself", "self_harm"),
    ("committing suicide", "self_harm"),  # doubled consonant before -ing
]


@pytest.mark.parametrize(("text", "category"), OBFUSCATED)
def test_obfuscated_spellings_are_caught(policy: Policy, text: str, category: str) -> None:
    assert category in matched(policy, text)


_FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(ord("a"), ord("z") + 1)}


@st.composite
def _disguised(draw: st.DrawFn, term: str) -> str:
    out = []
    for char in term:
        if char.isalpha():
            char = draw(st.sampled_from([char, char.upper(), _FULL_WIDTH.get(char, char)]))
        out.append(char)
        if draw(st.booleans()):
            out.append(draw(st.sampled_from(["\u200b", "\u200c", "\u2060", "\ufeff", "\u00ad"])))
    return "".join(out)


_TERMS = [(c.name, term) for c in load_policy().categories.values() for term in (*c.words, *c.phrases)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_TERMS).flatmap(lambda pair: st.tuples(st.just(pair[0]), _disguised(pair[1]))))
def test_any_packaged_term_survives_case_width_and_invisible_characters(pair: tuple[str, str]) -> None:
    category, text = pair
    assert category in matched(load_policy(), f"a painting of {text}, oil on canvas")


# --- clean prompts -------------------------------------------------------------------------------------------

CLEAN = [
    "a dwarf cleric healing a wounded knight",
    "a gnoll warband ambushes a caravan",
    "an assassin in Essex",
    "a gelatinous cube dissolving a skeleton",
    "a tiefling bard playing a lute in a crowded tavern",
    "an elven ranger drawing her bow at the edge of a misty forest",
    "a halfling rogue picking a lock by candlelight",
    "a cockatrice perched on a crumbling wall",
    "a merchant selling sextants and spyglasses in Middlesex",
    "a skirmish between orc raiders and town guards",
    "a therapist's office turned into a wizard's study",
    "Scunthorpe market square at dawn, oil painting",
    "a druid crushing grapes for the harvest festival",
    "a sage's analysis of an ancient map",
    "kidney bean stew bubbling in a witch's cauldron",
    "a kidnapped noble chained in a goblin camp",
    "a cocktail of glowing potions on an alchemist's bench",
    "a paladin raising a naked blade against the dawn",
    "a red dragon sleeping on a hoard of gold",
    "a mind flayer lurking in the Underdark",
    "a bard rapping a battle rhyme",
    "a Sussex farmhouse under a harvest moon",
    "the assassins' guild hall, dramatic lighting",
    "an owlbear cub tumbling in the grass",
    "a warforged fighter standing in a ruined city",
    "my childhood home, a cottage in the hills",
    "a tabaxi monk meditating under a waterfall, 4k, highly detailed",
    "a half-orc barbarian with a greataxe, portrait, bust",
]


@pytest.mark.parametrize("text", CLEAN)
def test_clean_tabletop_prompts_pass(policy: Policy, text: str) -> None:
    assert matched(policy, text) == set()
    moderate({"prompt": text}, policy)
    moderate({"prompt": text}, policy, block=list(policy.categories))


# A deliberately aggressive policy: short terms hidden inside clean words.
AGGRESSIVE = Policy(
    categories={
        "crude": Category(
            "crude", words=("sex", "ass", "anal", "cock", "cunt", "rape", "rapist", "tit", "kid", "cum", "hell")
        )
    }
)


@pytest.mark.parametrize(
    "word",
    [
        "Essex",
        "Middlesex",
        "Sussex",
        "sextant",
        "assassin",
        "bass",
        "analysis",
        "canal",
        "cocktail",
        "cockatrice",
        "Scunthorpe",
        "grape",
        "drapes",
        "therapist",
        "title",
        "titan",
        "kidney",
        "kidnap",
        "kidding",
        "cucumber",
        "document",
        "shell",
        "hello",
        "rapping",
    ],
)
def test_terms_inside_clean_words_do_not_match(word: str) -> None:
    assert matched(AGGRESSIVE, f"a {word} on the table") == set()


@pytest.mark.parametrize("text", ["sex", "asses", "anal", "cocks", "rape", "raped", "raping", "tits", "kids", "hell"])
def test_the_aggressive_terms_themselves_match(text: str) -> None:
    assert matched(AGGRESSIVE, f"a {text} on the table") == {"crude"}


def test_repeated_letters_keep_a_terms_own_doubles(policy: Policy) -> None:
    assert "sexual" in matched(policy, "boobs")
    assert "sexual" in matched(policy, "booooobs")
    assert matched(policy, "Bob's tavern") == set()
    assert matched(policy, "bobs") == set()


def test_phrases_match_across_separators_but_not_across_fields(policy: Policy) -> None:
    for text in ("self harm", "self   harm", "self-harm", "self_harm", "selfharm", "Self, harm"):
        assert "self_harm" in matched(policy, text), text
    assert scan({"a": "a self portrait", "b": "harm"}, policy).matched == {}


# --- blocking, allowing, combos --------------------------------------------------------------------------------


def test_gore_passes_by_default_and_is_refused_when_blocked(policy: Policy) -> None:
    text = "a decapitated goblin on a pike"
    moderate({"prompt": text}, policy)
    with pytest.raises(ModerationError) as caught:
        moderate({"prompt": text}, policy, block=[*policy.default_block, "gore"])
    assert caught.value.category == "gore"


def test_a_childrens_table_blocks_horror(policy: Policy) -> None:
    text = "a zombie shambling out of a graveyard"
    moderate({"prompt": text}, policy)
    with pytest.raises(ModerationError) as caught:
        moderate({"prompt": text}, policy, block=[*policy.default_block, "gore", "horror"])
    assert caught.value.category == "horror"


def test_allow_removes_a_category(policy: Policy) -> None:
    text = "a sexy vampire countess"
    with pytest.raises(ModerationError) as caught:
        moderate({"prompt": text}, policy)
    assert caught.value.category == "sexual"
    moderate({"prompt": text}, policy, allow=["sexual"])
    moderate({"prompt": text}, policy, block=["sexual", "hate"], allow=["sexual"])


def test_an_empty_block_list_blocks_nothing_but_combos(policy: Policy) -> None:
    moderate({"prompt": "a sexy elf, a swastika, self harm"}, policy, block=[])


def test_a_combo_is_refused_even_when_both_groups_are_allowed(policy: Policy) -> None:
    text = "a sexy schoolgirl"
    for block, allow in [
        (None, ()),
        ([], ()),
        (None, ["sexual", "minors"]),
        ([], ["sexual", "minors", "sexual_minors"]),
    ]:
        with pytest.raises(ModerationError) as caught:
            moderate({"prompt": text}, policy, block=block, allow=allow)
        assert (caught.value.param, caught.value.category) == ("prompt", "sexual_minors")


def test_a_combo_spanning_fields_names_the_field_that_completed_it(policy: Policy) -> None:
    fields = {"character.age": "a child", "character.features": "freckles", "prompt": "nude"}
    with pytest.raises(ModerationError) as caught:
        moderate(fields, policy, block=[])
    assert (caught.value.param, caught.value.category) == ("prompt", "sexual_minors")
    reordered = {"prompt": "nude", "character.features": "freckles", "character.age": "a child"}
    with pytest.raises(ModerationError) as caught:
        moderate(reordered, policy, block=[])
    assert caught.value.param == "character.age"
    verdict = scan(fields, policy)
    assert dict(verdict.matched) == {"sexual": "prompt", "minors": "character.age"}
    assert dict(verdict.combos) == {"sexual_minors": "prompt"}


def test_one_group_alone_is_not_a_combo(policy: Policy) -> None:
    moderate({"prompt": "a child playing with a kite"}, policy)
    moderate({"prompt": "a child playing with a kite"}, policy, block=["sexual", "hate", "self_harm", "gore"])
    assert scan({"prompt": "a child playing with a kite"}, policy).combos == {}
    with pytest.raises(ModerationError) as caught:
        moderate({"prompt": "a sexy elf"}, policy, block=["sexual"])
    assert caught.value.category == "sexual"
    moderate({"prompt": "a sexy elf"}, policy, block=[])


def test_the_first_blocked_field_is_named(policy: Policy) -> None:
    fields = {"character.name": "Thorin", "character.features": "swastika tattoo", "prompt": "a dwarf"}
    with pytest.raises(ModerationError) as caught:
        moderate(fields, policy)
    assert (caught.value.param, caught.value.category) == ("character.features", "hate")


@pytest.mark.parametrize("names", [{"block": ["violence"]}, {"allow": ["sexaul"]}, {"block": "gore"}])
def test_unknown_categories_are_refused(policy: Policy, names: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="unknown category"):
        moderate({"prompt": "a dragon"}, policy, **names)  # type: ignore[arg-type]


# --- the error ---------------------------------------------------------------------------------------------------


def test_the_error_names_field_and_category_and_never_the_text(policy: Policy) -> None:
    text = "Zorblax poses s3xy and nud3 beside l0li Quixwell"
    with pytest.raises(ModerationError) as caught:
        moderate({"character.features": text}, policy)
    err = caught.value
    assert isinstance(err, InputError) and isinstance(err, ValueError)
    assert (err.param, err.category, err.value) == ("character.features", "sexual_minors", None)
    message = str(err)
    assert "character.features" in message and "sexual_minors" in message
    for leaked in (text, *text.split(), "sexy", "nude", "loli"):
        if leaked not in ("and",):
            assert leaked.casefold() not in message.casefold(), leaked
            assert leaked.casefold() not in repr(err.args).casefold(), leaked
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), again.param, again.category, str(again)) == (ModerationError, err.param, err.category, message)


# --- policy files ------------------------------------------------------------------------------------------------

GOOD = """
version: 1
default_block: [rude]
categories:
  rude: {words: [grumble, snark], phrases: [bad word]}
  young: {words: [whelp]}
combos:
  rude_young: {groups: [rude, young]}
"""


def test_a_policy_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(GOOD, encoding="utf-8")
    policy = load_policy(path)
    assert policy.default_block == ("rude",)
    assert policy.categories["rude"] == Category("rude", words=("grumble", "snark"), phrases=("bad word",))
    assert policy.combos == (Combo("rude_young", groups=("rude", "young")),)
    with pytest.raises(ModerationError) as caught:
        moderate({"prompt": "a gr-u-mbling snarky bard"}, policy)  # separators; "snarky" is not "snark"
    assert caught.value.category == "rude"
    moderate({"prompt": "a snarky bard"}, policy)
    with pytest.raises(ModerationError) as caught:
        moderate({"prompt": "a whelp", "negative_prompt": "b a d-w o r d"}, policy, allow=["rude"])
    assert (caught.value.param, caught.value.category) == ("negative_prompt", "rude_young")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("categories: {rude: {words: [x]}}\nextra: 1\n", "unknown key 'extra'"),
        ("categories: {rude: {words: [x], colour: red}}\n", "unknown key 'colour'"),
        ("categories: {rude: {words: [grumble]}}\ncombos: {c: {groups: [rude, nope]}}\n", "unknown category 'nope'"),
        ("categories: {rude: {words: [grumble]}}\ncombos: {c: {groups: [rude]}}\n", "two distinct groups"),
        ("categories: {rude: {words: [grumble]}}\ncombos: {c: {groups: [rude, rude]}}\n", "two distinct groups"),
        ("categories: {rude: {words: [grumble]}}\ncombos: {rude: {groups: [rude, rude]}}\n", "already used"),
        ("categories: {rude: {words: [grumble]}}\ncombos: {c: {description: x}}\n", "missing key 'groups'"),
        ("categories: {rude: {words: [grumble]}}\ndefault_block: [gore]\n", "unknown category 'gore'"),
        ("categories: {rude: {words: [two words]}}\n", "has spaces"),
        ("categories: {rude: {phrases: [single]}}\n", "two or more words"),
        ("categories: {rude: {words: [gr-umble]}}\n", "letters and digits"),
        ("categories: {rude: {words: [grumble, grumble]}}\n", "twice"),
        ("categories: {rude: {words: [1488]}}\n", "list of strings"),
        ("categories: {rude: {}}\n", "no words and no phrases"),
        ("categories: {Rude: {words: [grumble]}}\n", "must match"),
        ("version: 2\ncategories: {rude: {words: [grumble]}}\n", "unsupported version"),
        ("default_block: []\n", "missing key 'categories'"),
        ("- a\n- b\n", "mapping at the top level"),
        ("categories: [rude]\n", "expected a mapping"),
        ("categories: {rude: {words: [grumble]\n", "not valid YAML"),
    ],
)
def test_bad_policy_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)


def test_policy_from_dict_and_direct_construction_validate() -> None:
    with pytest.raises(ValueError, match="unknown category"):
        Policy(categories={"a": Category("a", words=("x",))}, combos=(Combo("c", ("a", "b")),))
    with pytest.raises(ValueError, match="keyed under another name"):
        Policy(categories={"a": Category("b", words=("x",))})
    with pytest.raises(ValueError, match="expected a mapping"):
        policy_from_dict([])  # type: ignore[arg-type]
