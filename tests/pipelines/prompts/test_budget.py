"""The prompt budget: CLIP pre-tokens counted by hand, fragments past the 75 readable tokens named."""

from __future__ import annotations

import re

import pytest

from pipelines.prompts import budget as budget_module
from pipelines.prompts.budget import Budget, count_tokens, pretokens, prompt_budget


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("a red dragon", 3),
        ("dragon's lair, 42", 6),  # dragon | 's | lair | , | 4 | 2
        ("ink-and-wash", 5),  # ink | - | and | - | wash
        ("can't stop", 3),  # can | 't | stop
        ("hello!!! world", 3),  # hello | !!! | world
        ("#ff8000", 6),  # # | ff | 8 | 0 | 0 | 0
        ("x_y", 3),  # _ is not a letter: x | _ | y
        ("Éowyn of Rohan", 3),
        ("  spaced   out  ", 2),
        ("a,,b", 3),  # a | ,, | b
    ],
)
def test_hand_counted_pretokens(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens


def test_pretoken_spans() -> None:
    assert pretokens("Big cat's") == [(0, 3), (4, 7), (7, 9)]


def test_the_re_fallback_agrees_with_clips_pattern() -> None:
    fallback = re.compile(budget_module._RE_PATTERN)
    for text in ("dragon's lair, 42", "x_y-z!!,, #ff8000 Éowyn ümlaut 'll", "a\tb\nc", "ЖАР-птица 12"):
        assert len(fallback.findall(text.lower())) == count_tokens(text), text


def test_a_short_prompt_fits() -> None:
    assert prompt_budget("portrait of Mira, an elf ranger") == Budget(
        7, 77, (), None
    )  # portrait | of | mira | , | an | elf | ranger
    assert prompt_budget("portrait of Mira").fits and prompt_budget("x").room == 75


def test_fragments_past_the_window_are_named() -> None:
    words = [f"w{i:02d}x" for i in range(80)]  # "wNNx" is w | N | N | x: 4 pre-tokens
    # Fragment i starts at token 5 * i (4 + its comma). The encoder reads tokens 0..74 (77 less start and end):
    # fragment 14 is tokens 70..73 with its comma at 74, fragment 15 starts at 75.
    result = prompt_budget(", ".join(words))
    assert result.tokens == 80 * 4 + 79
    assert result.overflow == tuple(words[15:])
    assert result.partial is None and not result.fits


def test_the_fragment_across_the_edge_is_partial() -> None:
    # "a b" is tokens 0, 1, its comma 2; fragment k >= 1 ("c d e zz..z", 4 tokens) starts at 3 + 5 * (k - 1).
    fragments = ["a b", *("c d e " + "z" * k for k in range(1, 20))]
    result = prompt_budget(", ".join(fragments))
    # k = 15 starts at 73 and runs to 76 (past 74): partial; k = 16 starts at 78: overflow.
    assert result.partial == "c d e " + "z" * 15
    assert result.overflow == tuple(fragments[16:])


def test_smaller_windows() -> None:
    # a(0) ,(1) b(2) ,(3) c(4)
    assert prompt_budget("a, b, c", window=5) == Budget(5, 5, ("c",), None)
    assert prompt_budget("a, b, c", window=4) == Budget(5, 4, ("b", "c"), None)
    assert prompt_budget("a b c d", window=4) == Budget(4, 4, (), "a b c d")
    assert prompt_budget(" , ,, ", window=3).overflow == ()  # no empty fragments reported
    with pytest.raises(ValueError):
        prompt_budget("a", window=2)


def test_the_count_is_a_lower_bound_of_real_clip_tokens() -> None:
    from transformers import CLIPTokenizer

    from pipelines.tiny import tiny_vocab

    vocab, merges = tiny_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)

    def real(text: str) -> int:
        return len(tokenizer(text, truncation=False)["input_ids"]) - 2  # start and end

    # Single characters are single tokens: the counts agree exactly where pre-tokens do not split further.
    assert count_tokens("a , b ! 4 2 c") == real("a , b ! 4 2 c") == 7
    for text in ("portrait of Mira, an elf ranger", "dragon's lair, 42", "ink-and-wash, chiaroscuro!!"):
        assert count_tokens(text) <= real(text), text
