"""Content moderation: an offline, configurable word and phrase policy applied to request text.

A :class:`Policy` (loaded from ``pipelines/data/moderation.yaml`` or a deployment's own file) holds
*categories* (``sexual``, ``minors``, ``gore``, ``horror``, ``hate``, ``self_harm``...), each a list of words and
phrases, and *combos* modelled on AI Horde's rule: a combo refuses a request only when two separate groups (for
example ``minors`` and ``sexual``) both match in it. Combos always apply and cannot be allowed away. Which plain
categories refuse is chosen per call: ``block`` (the deployment's list, or the policy's ``default_block`` when
it says nothing), less ``allow`` (what a theme permits). Gore and horror are ordinary tabletop content, so the
packaged policy does not block them by default; a children's-table theme or a deployment config does.

    ValueError
     └── InputError
          └── ModerationError   a field matched a blocked category or a combo (never carries the text)

Matching works on a normalised copy of each field, so it survives:

- case (``casefold``) and Unicode tricks: NFKD folds full-width and mathematical letters to ASCII, combining
  marks and format characters (zero-width spaces and joiners, soft hyphens) are dropped, and a small table maps
  Cyrillic and Greek look-alikes (dze, ie, ha, omicron...) to Latin letters;
- separators inside a word: punctuation inside a whitespace-free chunk is also read with the punctuation
  removed (``s.e.x``, ``se-x``, ``s_e_x``), and a run of single characters is joined (``s e x``);
- leetspeak: each letter of a term also matches its look-alikes (0→o, 1→i or l, 3→e, 4→a, 5→s, 7→t, 8→b,
  @→a, $→s, |→i or l, !→i);
- repeated letters: each letter run of a term matches that run or a longer one (``seeexy``), while a term's own
  double letters stay required (``boobs`` does not match ``bobs``);
- simple suffixes: words of four letters or more also match with ``s``, ``es``, ``ed``, ``ing`` (a final ``e``
  is dropped before ``ing``/``ed``: ``mutilate`` → ``mutilating``), shorter ones only their plurals (``kid`` →
  ``kids``, not ``kidding``).

Terms match whole words only: a term must neither follow nor precede a letter or digit, so ``Essex``,
``Middlesex``, ``sextant``, ``assassin``, ``cocktail``, ``Scunthorpe``, ``therapist``, ``grape``, ``analysis``
and ``kidney`` never match the shorter terms inside them. A phrase matches across any separators between its
words, or with none (``self harm``, ``self-harm``, ``selfharm``). Fields are scanned one by one: a phrase never
spans two fields, a combo does.

Matching is deterministic. Each policy compiles one regular expression per category the first time it is used
and keeps it (load a policy once and reuse it); importing the module builds only a few small constant tables
and never reads the policy file. This module never logs, and
:class:`ModerationError` holds only the field name and the category, never the text that matched.
"""

from __future__ import annotations

import importlib.resources
import itertools
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from pipelines.errors import InputError

__all__ = [
    "Category",
    "Combo",
    "ModerationError",
    "Policy",
    "Verdict",
    "load_policy",
    "moderate",
    "policy_from_dict",
    "scan",
]

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TERM_WORD = re.compile(r"[^\W_]+")

# Letters each term letter also matches (after casefolding); digits and other characters match themselves.
_LEET: dict[str, str] = {
    "a": "a4@",
    "b": "b8",
    "e": "e3",
    "i": "i1!|",
    "l": "l1|",
    "o": "o0",
    "s": "s5$",
    "t": "t7",
}

# Cyrillic and Greek letters that look like Latin ones (lower case; applied after casefold).
_HOMOGLYPHS = str.maketrans(
    {
        "\u0430": "a",  # cyrillic small letter a
        "\u0432": "b",  # cyrillic small letter ve
        "\u0435": "e",  # cyrillic small letter ie
        "\u043a": "k",  # cyrillic small letter ka
        "\u043c": "m",  # cyrillic small letter em
        "\u043d": "h",  # cyrillic small letter en
        "\u043e": "o",  # cyrillic small letter o
        "\u0440": "p",  # cyrillic small letter er
        "\u0441": "c",  # cyrillic small letter es
        "\u0442": "t",  # cyrillic small letter te
        "\u0443": "y",  # cyrillic small letter u
        "\u0445": "x",  # cyrillic small letter ha
        "\u0455": "s",  # cyrillic small letter dze
        "\u0456": "i",  # cyrillic small letter byelorussian-ukrainian i
        "\u0458": "j",  # cyrillic small letter je
        "\u0501": "d",  # cyrillic small letter komi de
        "\u04cf": "l",  # cyrillic small letter palochka
        "\u0261": "g",  # latin small letter script g
        "\u03b1": "a",  # greek small letter alpha
        "\u03b2": "b",  # greek small letter beta
        "\u03b5": "e",  # greek small letter epsilon
        "\u03b7": "n",  # greek small letter eta
        "\u03b9": "i",  # greek small letter iota
        "\u03ba": "k",  # greek small letter kappa
        "\u03bd": "v",  # greek small letter nu
        "\u03bf": "o",  # greek small letter omicron
        "\u03c1": "p",  # greek small letter rho
        "\u03c4": "t",  # greek small letter tau
        "\u03c5": "u",  # greek small letter upsilon
        "\u03c7": "x",  # greek small letter chi
    }
)

# Text is read as one line of words, each preceded by a space, so every pattern starts with a literal space (the
# regex engine then jumps from space to space) and its first letters dispatch a group of terms. Which characters
# separate words: anything but a letter, a digit, or a symbol leetspeak uses for a letter ("_" separates too).
_KEEP = "@$|!"
_ASCII_WORD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789" + _KEEP)
_ASCII_SPACES = str.maketrans({chr(i): " " for i in range(128) if chr(i) not in _ASCII_WORD})
_ASCII_INNER = str.maketrans({chr(i): None for i in range(128) if chr(i) not in _ASCII_WORD and not chr(i).isspace()})
# Dropped after NFKD: combining marks (accents, strike-through) and format characters (zero-width spaces and
# joiners, soft hyphens, direction marks). The regex removes the common ones fast; the category test the rest.
_DROPPED = frozenset({"Mn", "Mc", "Me", "Cf"})
_COMMON_MARKS = re.compile(
    "[\u00ad\u0300-\u036f\u180e\u1ab0-\u1aff\u1dc0-\u1dff\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f\ufeff]+"
)
_SEPARATORS = re.compile(r"(?:[^\w@$|!]|_)+")
_INNER = re.compile(r"(?:[^\s\w@$|!]|_)+")
_SINGLE_RUN = re.compile(r" \S(?: \S(?= ))+")
_AFTER = r"(?![^\W_])"


class ModerationError(InputError):
    """A field of the request matched a blocked moderation category or a combo.

    ``param`` names the field (e.g. ``"prompt"`` or ``"character.features"``); for a combo whose groups matched in
    different fields it names the field that completed the combo: the later, in the order the fields were given,
    of the fields where each group first matched. ``value`` is always ``None`` and the message names only the field
    and the category: the matched text and the term never leave this module.

    Attributes:
        category: The blocked category or combo name (e.g. ``"sexual"`` or ``"sexual_minors"``).
    """

    error_type = "moderation"

    def __init__(self, param: str, category: str) -> None:
        super().__init__(param, None, f"text outside the moderation category {category!r}")
        # What BaseException.__reduce__ passes back to __init__ on unpickling.
        self.args = (param, category)
        self.category = category

    def __str__(self) -> str:
        return f"{self.param} was refused by content moderation (category {self.category!r})"


@dataclass(frozen=True)
class Category:
    """A moderation category.

    Attributes:
        name: Identifier (``[a-z][a-z0-9_]*``).
        words: Single words (letters and digits only), matched as whole words with the simple suffixes.
        phrases: Two or more words separated by spaces, matched across any separators (or none).
        description: What the category covers (documentation only).
    """

    name: str
    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(self.words))
        object.__setattr__(self, "phrases", tuple(self.phrases))


@dataclass(frozen=True)
class Combo:
    """An always-on rule: refuses when every group matches in the same request.

    Attributes:
        name: Identifier, distinct from every category name (e.g. ``"sexual_minors"``).
        groups: Two or more distinct category names.
        description: What the combo covers (documentation only).
    """

    name: str
    groups: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))


@dataclass(frozen=True)
class Verdict:
    """What a scan found.

    Attributes:
        matched: Category name → the first field (in the order given) where it matched, in policy order.
        combos: Combo name → the field that completed it (see :class:`ModerationError`), in policy order.
    """

    matched: Mapping[str, str]
    combos: Mapping[str, str]


@dataclass(frozen=True)
class Policy:
    """A moderation policy. Construct it with :func:`load_policy` or :func:`policy_from_dict`.

    Attributes:
        categories: Category name → category, in file order (the order refusals are checked in).
        combos: The always-on combos.
        default_block: Categories refused when the caller passes no ``block`` list.

    Raises:
        ValueError: A name is malformed or used twice, a combo or ``default_block`` names an unknown category,
            a combo has fewer than two distinct groups, or a term is malformed.
    """

    categories: Mapping[str, Category]
    combos: tuple[Combo, ...] = ()
    default_block: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Copied into read-only containers: the compiled patterns must not go stale.
        object.__setattr__(self, "categories", MappingProxyType(dict(self.categories)))
        object.__setattr__(self, "combos", tuple(self.combos))
        object.__setattr__(self, "default_block", tuple(self.default_block))
        for key, category in self.categories.items():
            if key != category.name:
                raise ValueError(f"category {key!r} is keyed under another name ({category.name!r})")
            _check_name(key, "category")
            if not category.words and not category.phrases:
                raise ValueError(f"category {key!r} has no words and no phrases")
            for word in category.words:
                _term_words(word, key, phrase=False)
            for phrase in category.phrases:
                _term_words(phrase, key, phrase=True)
            for kind, terms in (("word", category.words), ("phrase", category.phrases)):
                if len(set(terms)) != len(terms):
                    raise ValueError(f"category {key!r} lists a {kind} twice")
        seen: set[str] = set()
        for combo in self.combos:
            _check_name(combo.name, "combo")
            if combo.name in self.categories or combo.name in seen:
                raise ValueError(f"combo {combo.name!r}: the name is already used")
            seen.add(combo.name)
            if len(set(combo.groups)) != len(combo.groups) or len(combo.groups) < 2:
                raise ValueError(f"combo {combo.name!r} needs at least two distinct groups")
            for group in combo.groups:
                if group not in self.categories:
                    raise ValueError(f"combo {combo.name!r} names an unknown category {group!r}")
        for name in self.default_block:
            if name not in self.categories:
                raise ValueError(f"default_block names an unknown category {name!r}")

    @property
    def combo_names(self) -> tuple[str, ...]:
        """The combo names, in policy order."""
        return tuple(combo.name for combo in self.combos)

    @cached_property
    def _patterns(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        # Compiled on first use and kept on the instance (cached_property writes the instance __dict__
        # directly, which a frozen dataclass allows); two threads racing here compile the same thing twice.
        return tuple((name, _compile_category(category)) for name, category in self.categories.items())


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    """Builds a policy from the parsed YAML form (strict: unknown keys are refused).

    The form::

        version: 1
        default_block: [sexual, hate]
        categories:
          sexual: {description: "...", words: [...], phrases: [...]}
        combos:
          sexual_minors: {description: "...", groups: [minors, sexual]}

    Args:
        data: The mapping.

    Returns:
        The policy.

    Raises:
        ValueError: An unknown or missing key, a value of the wrong type, or anything :class:`Policy` refuses.
    """
    data = _mapping(data, "policy")
    _check_keys(data, "policy", required={"categories"}, optional={"version", "default_block", "combos"})
    if data.get("version", 1) != 1:
        raise ValueError(f"policy: unsupported version {data.get('version')!r} (expected 1)")
    raw_categories = _mapping(data["categories"], "categories")
    categories: dict[str, Category] = {}
    for name, body in raw_categories.items():
        where = f"categories.{name}"
        body = _mapping(body, where)
        _check_keys(body, where, required=set(), optional={"description", "words", "phrases"})
        categories[name] = Category(
            name=name,
            words=_strings(body.get("words", []), f"{where}.words"),
            phrases=_strings(body.get("phrases", []), f"{where}.phrases"),
            description=_string(body.get("description", ""), f"{where}.description"),
        )
    combos: list[Combo] = []
    for name, body in _mapping(data.get("combos") or {}, "combos").items():
        where = f"combos.{name}"
        body = _mapping(body, where)
        _check_keys(body, where, required={"groups"}, optional={"description"})
        combos.append(
            Combo(
                name=name,
                groups=_strings(body["groups"], f"{where}.groups"),
                description=_string(body.get("description", ""), f"{where}.description"),
            )
        )
    return Policy(
        categories=categories,
        combos=tuple(combos),
        default_block=_strings(data.get("default_block", []), "default_block"),
    )


def load_policy(path: str | Path | None = None) -> Policy:
    """Loads a policy file.

    Args:
        path: A YAML file in the form :func:`policy_from_dict` reads; ``None`` loads the packaged default
            (``pipelines/data/moderation.yaml``).

    Returns:
        The policy (its patterns compile on first use).

    Raises:
        OSError: The file cannot be read.
        ValueError: The file is not valid YAML or not a valid policy; the message names the file.
    """
    if path is None:
        where = "pipelines/data/moderation.yaml"
        text = importlib.resources.files("pipelines").joinpath("data", "moderation.yaml").read_text("utf-8")
    else:
        where = str(path)
        text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping at the top level")
    try:
        return policy_from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def scan(fields: Mapping[str, str], policy: Policy) -> Verdict:
    """Finds every category and combo that matches, and where.

    Args:
        fields: Field name → text, in the order fields should be reported (e.g. ``{"prompt": ...}`` or
            ``{"character.name": ..., "character.features": ...}``). Empty texts are skipped.
        policy: The policy.

    Returns:
        The verdict; nothing is refused here.
    """
    return _scan(fields, policy, None)


def moderate(
    fields: Mapping[str, str],
    policy: Policy,
    *,
    block: Collection[str] | None = None,
    allow: Collection[str] = (),
) -> None:
    """Refuses the request if any field matches a blocked category or a combo.

    Refused categories are ``(block if block is not None else policy.default_block) - allow``, plus every
    combo, always. Combos are checked first, then the categories in policy order.

    Args:
        fields: Field name → text (see :func:`scan`).
        policy: The policy.
        block: The categories to refuse (a deployment's list plus a theme's additions); ``None`` uses the
            policy's ``default_block``. Naming a combo is allowed and changes nothing.
        allow: Categories to permit although ``block`` names them (a theme's allow list). Naming a combo is
            allowed and changes nothing: combos cannot be allowed away.

    Raises:
        ModerationError: A field matched; ``param`` is the field, ``category`` the category or combo.
        ValueError: ``block`` or ``allow`` names something that is neither a category nor a combo.
    """
    chosen = policy.default_block if block is None else block
    for names, what in ((chosen, "block"), (allow, "allow")):
        for name in names:
            if name not in policy.categories and name not in policy.combo_names:
                raise ValueError(f"moderation {what} names an unknown category {name!r}")
    blocked = set(chosen) - set(allow)
    wanted = blocked | {group for combo in policy.combos for group in combo.groups}
    verdict = _scan(fields, policy, wanted)
    for name, param in verdict.combos.items():
        raise ModerationError(param, name)
    for name, param in verdict.matched.items():
        if name in blocked:
            raise ModerationError(param, name)


def _scan(fields: Mapping[str, str], policy: Policy, wanted: Collection[str] | None) -> Verdict:
    patterns = [(name, pattern) for name, pattern in policy._patterns if wanted is None or name in wanted]
    found: dict[str, str] = {}
    order: dict[str, int] = {}
    for index, (param, text) in enumerate(fields.items()):
        if not text or not patterns:
            continue
        canonical = _canonical(text)
        remaining = []
        for name, pattern in patterns:
            if pattern.search(canonical):
                found[name] = param
                order[name] = index
            else:
                remaining.append((name, pattern))
        patterns = remaining
    matched = {name: found[name] for name in policy.categories if name in found}
    combos: dict[str, str] = {}
    for combo in policy.combos:
        if all(group in found for group in combo.groups):
            last = max(combo.groups, key=lambda group: order[group])
            combos[combo.name] = found[last]
    return Verdict(matched=MappingProxyType(matched), combos=MappingProxyType(combos))


def _canonical(text: str) -> str:
    """The text as the patterns read it.

    One line of the words (each after a space, runs of single characters joined), then a second line, where
    needed, with the chunks between whitespace that have punctuation inside read without it ("s.e.x", "se-x")
    and each run of single characters also read without its first or last one. A phrase's words are joined by
    at most one space, so a phrase never runs from one line into the next.
    """
    text = text.casefold()
    if not text.isascii():
        # NFKD can produce capitals (U+210C black-letter H → "H"), so fold again after it.
        text = _COMMON_MARKS.sub("", unicodedata.normalize("NFKD", text)).casefold()
        if not text.isascii():
            text = "".join(c for c in text if unicodedata.category(c) not in _DROPPED).translate(_HOMOGLYPHS)
    if text.isascii():
        words = text.translate(_ASCII_SPACES).split()
        chunks = text.translate(_ASCII_INNER).split()
    else:
        words = _SEPARATORS.sub(" ", text).split()
        chunks = _INNER.sub("", text).split()
    line = " " + " ".join(words) + " "
    extra = set(chunks).difference(words)
    runs = _SINGLE_RUN.findall(line)
    if runs:
        line = _SINGLE_RUN.sub(_join_run, line)
        # A spaced-out word may follow or precede a one-letter word ("a s e x scene"): read it without either end.
        for run in runs:
            letters = run.split()
            extra.update("".join(part) for part in (letters[1:], letters[:-1]) if len(part) > 1)
    return line + "\n " + " ".join(sorted(extra)) + " " if extra else line


def _join_run(match: re.Match[str]) -> str:
    return " " + match.group().replace(" ", "")


def _compile_category(category: Category) -> re.Pattern[str]:
    # Terms grouped by their first letter: each group opens with a character class, which the engine tests
    # before entering the group, so a word start costs one test per group rather than one per term.
    groups: dict[str, list[str]] = {}
    for term in (*category.words, *category.phrases):
        words = _fold_term(term).split()
        rest = " ?".join(_word_pattern(word, skip_first=index == 0) for index, word in enumerate(words))
        groups.setdefault(_char_class(words[0][0]), []).append(rest)
    body = "|".join(f"{first}(?:{'|'.join(rests)})" for first, rests in groups.items())
    # "[!|]*": stray "!" or "|" before a word ("!!sex") are noise, yet "|" may also be the first letter ("|oli").
    return re.compile(f" [!|]*(?:{body}){_AFTER}")


def _char_class(char: str) -> str:
    return "[" + re.escape(_LEET[char]) + "]" if char in _LEET else re.escape(char)


def _word_pattern(word: str, *, skip_first: bool = False) -> str:
    """The pattern for one word of a term; with ``skip_first`` its first letter is taken as already matched."""
    runs = [(char, len(list(group))) for char, group in itertools.groupby(word)]

    def run(index: int, exact: bool = False) -> str:
        char, count = runs[index]
        count -= 1 if skip_first and index == 0 else 0
        cls = _char_class(char)
        if exact:
            return "" if count == 0 else cls if count == 1 else f"{cls}{{{count}}}"
        return f"{cls}*" if count == 0 else f"{cls}+" if count == 1 else f"{cls}{{{count},}}"

    if len(word) <= 3:
        return "".join(run(i) for i in range(len(runs))) + "(?:e?s)?"
    if runs[-1] == ("e", 1):
        # "rape" → rapes, raped, raping; the consonant before "ing" does not double ("rapping" is not "rape").
        stem = "".join(run(i) for i in range(len(runs) - 2))
        last = len(runs) - 2
        return f"{stem}(?:{run(last)}{_char_class('e')}+[sd]?|{run(last, exact=True)}ings?)"
    return "".join(run(i) for i in range(len(runs))) + "(?:e?s|ed|ings?)?"


def _fold_term(term: str) -> str:
    term = unicodedata.normalize("NFKD", term.casefold())
    return "".join(c for c in term if unicodedata.category(c) not in _DROPPED).casefold()


def _term_words(term: str, category: str, *, phrase: bool) -> list[str]:
    words = _fold_term(term).split()
    if not all(_TERM_WORD.fullmatch(word) for word in words) or not words:
        raise ValueError(f"category {category!r}: term {term!r} must be letters and digits separated by spaces")
    if phrase and len(words) < 2:
        raise ValueError(f"category {category!r}: phrase {term!r} needs two or more words (list it under words)")
    if not phrase and len(words) != 1:
        raise ValueError(f"category {category!r}: word {term!r} has spaces (list it under phrases)")
    return words


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{what} name {name!r} must match [a-z][a-z0-9_]*")


def _check_keys(data: Mapping[str, Any], where: str, *, required: set[str], optional: set[str]) -> None:
    unknown = sorted(str(key) for key in data if key not in required | optional)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(required | optional))})")
    missing = sorted(required - set(data))
    if missing:
        raise ValueError(f"{where}: missing key {missing[0]!r}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"{where}: keys must be strings, got {key!r}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where}: expected a list of strings")
    return tuple(value)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string")
    return value
