"""The errors every pipeline raises, so the edge can tell bad input from a broken stage.

    ValueError
     └── InputError        an input is out of range: names the field, the value and what is allowed
    Cancelled              a step callback asked to stop; nothing was produced

Every check in pipelines/ (generation, prompts, and later overlay geometry, themes and specs) raises
:class:`InputError`; serve_app/errors.py maps it to HTTP 422 with ``param`` naming the field. Both exceptions
pass their constructor arguments to ``super().__init__`` so they pickle across Ray handles.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Cancelled", "InputError", "field_path"]


def field_path(*parts: str | int) -> str:
    """How every error names a field: ``field_path("tokens", 3, "cell")`` is ``"tokens[3].cell"``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += str(part) if not out else f".{part}"
    return out


class InputError(ValueError):
    """An input is outside what a pipeline accepts.

    Attributes:
        param: Name of the offending field: dotted for nested fields, list indexes in brackets
            (``tokens[2].cell``; :func:`field_path` builds one).
        value: The value that was given.
        allowed: What would have been accepted.
    """

    def __init__(self, param: str, value: Any, allowed: str) -> None:
        super().__init__(param, value, allowed)
        self.param = param
        self.value = value
        self.allowed = allowed

    def __str__(self) -> str:
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{self.param}={shown} is not allowed: {self.allowed}"


class Cancelled(Exception):
    """A step callback returned False after ``step`` of ``total``; no result was produced."""

    def __init__(self, step: int, total: int) -> None:
        super().__init__(step, total)
        self.step = step
        self.total = total

    def __str__(self) -> str:
        return f"cancelled after step {self.step} of {self.total}"
