"""The prompt budget: how much of a prompt SDXL's CLIP text encoders read.

CLIP reads 77 tokens, two of which are the start and end tokens, so 75 of the prompt's. Diffusers cuts the
rest off (unless a long-prompt scheme such as compel's chunking is used, which limner does not).

Tokens are counted as CLIP *pre-tokens*: the words CLIP's tokenizer splits a lowercased prompt into with its
own regular expression (``'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+``) before byte-pair
encoding. Every pre-token is at least one BPE token, so the count is an **estimate and a lower bound** of
the real one (a rare word splits into several: "chiaroscuro" is 4 tokens): a fragment reported past the
window is certainly cut off, one close to the edge may be too. It needs no vocabulary file, which an offline
machine does not have for real SDXL. The pattern uses the ``regex`` module (a dependency of transformers)
when it is installed, else an equivalent ``re`` pattern (the same on any text whose letters and digits are
``str.isalpha`` / ``str.isdecimal``, which covers every Latin, Greek and Cyrillic prompt).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["SPECIAL_TOKENS", "WINDOW", "Budget", "budget_warnings", "count_tokens", "pretokens", "prompt_budget"]

WINDOW: Final = 77
"""CLIP's context length, in tokens."""
SPECIAL_TOKENS: Final = 2
"""The start and end tokens, which take 2 of the window."""

_CLIP_PATTERN: Final = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_RE_PATTERN: Final = r"""'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+"""


def _compile() -> Any:
    try:
        import regex  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - transformers installs it
        return re.compile(_RE_PATTERN)
    return regex.compile(_CLIP_PATTERN)


_pattern: Any = None


def _regex() -> Any:
    global _pattern  # compiled on first use: no import-time work
    if _pattern is None:
        _pattern = _compile()
    return _pattern


def pretokens(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of the CLIP pre-tokens of ``text`` (lowercased, as CLIP does)."""
    return [m.span() for m in _regex().finditer(text.lower())]


def count_tokens(text: str) -> int:
    """CLIP pre-tokens in ``text``: a lower bound of its BPE tokens, start and end tokens not included."""
    return len(pretokens(text))


@dataclass(frozen=True)
class Budget:
    """A prompt measured against the window.

    Attributes:
        tokens: Its (pre-)tokens, start and end tokens not included.
        window: The window, start and end tokens included (77).
        overflow: Its comma-separated fragments whose first token falls past what the encoder reads, in
            order (empty when it fits).
        partial: The fragment that straddles the edge (begins inside, ends past it), or None.
    """

    tokens: int
    window: int
    overflow: tuple[str, ...]
    partial: str | None = None

    @property
    def room(self) -> int:
        """Tokens of prompt the window holds (``window - 2``)."""
        return self.window - SPECIAL_TOKENS

    @property
    def fits(self) -> bool:
        """Whether the encoder reads all of it (by this lower-bound count)."""
        return self.tokens <= self.room


def prompt_budget(prompt: str, window: int = WINDOW) -> Budget:
    """Measures ``prompt`` against a CLIP window.

    The prompt's tokens are numbered from 0 (the start token not counted); the encoder reads tokens
    ``0 .. window - 3``. A comma-separated fragment whose first token is numbered ``window - 2`` or more is in
    ``overflow`` (the commas themselves are tokens).

    Args:
        prompt: The composed prompt.
        window: The encoder's context length, start and end tokens included.

    Raises:
        ValueError: ``window`` leaves no room for a prompt token.
    """
    room = window - SPECIAL_TOKENS
    if room < 1:
        raise ValueError(f"window {window} leaves no room for the prompt")
    lowered = prompt.lower()
    spans = [m.span() for m in _regex().finditer(lowered)]
    # Fragments are reported as written; lowercasing changes the length of a few characters ("İ"), and then
    # the lowered text is what the spans index.
    shown = prompt if len(lowered) == len(prompt) else lowered
    overflow: list[str] = []
    partial = None
    start = index = 0  # index: the first token at or after the current fragment's start
    for piece in shown.split(","):
        end = start + len(piece)
        while index < len(spans) and spans[index][0] < start:
            index += 1
        last = index
        while last < len(spans) and spans[last][1] <= end:
            last += 1
        fragment = piece.strip()
        if fragment and last > index:
            if index >= room:
                overflow.append(fragment)
            elif last > room:
                partial = fragment
        start = end + 1  # past the comma
    return Budget(len(spans), window, tuple(overflow), partial)


def budget_warnings(fields: dict[str, str], window: int = WINDOW) -> list[str]:
    """One warning per field (name → prompt text) with fragments past the window, naming them."""
    warnings = []
    for name, text in fields.items():
        budget = prompt_budget(text, window)
        if budget.overflow:
            warnings.append(
                f"{name}: about {budget.tokens} CLIP tokens, past the {budget.window}-token window; "
                f"these fragments are cut off: {list(budget.overflow)}"
            )
    return warnings
