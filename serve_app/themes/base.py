"""What the theme service hands out, and the errors it raises (plain data; no database here)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from pipelines.styles import Style, ThemeData

__all__ = [
    "ResolvedTheme",
    "ThemeConflict",
    "ThemeNotFound",
    "ThemeReadOnly",
    "ThemeRecord",
    "ThemeRef",
    "ThemeVersionRecord",
]

_REF = re.compile(r"^(?P<name>[^@\s]{1,128})(?:@(?P<version>[0-9]{1,9}))?$")


@dataclass(frozen=True)
class ThemeRef:
    """``name``, ``id``, ``name@3`` or ``id@3``: a theme, optionally pinned to a version.

    Attributes:
        key: The name or the id, as given.
        version: The pinned version, or None for the current one.
    """

    key: str
    version: int | None = None

    @classmethod
    def parse(cls, ref: str) -> ThemeRef:
        """Parses a reference; an unparsable one is a :class:`ThemeNotFound` (there is no such theme)."""
        match = _REF.match(ref.strip())
        if match is None:
            raise ThemeNotFound(ref)
        version = match.group("version")
        return cls(match.group("name"), int(version) if version is not None else None)

    @property
    def id(self) -> uuid.UUID | None:
        """The key as an id, when it is one."""
        try:
            return uuid.UUID(self.key)
        except ValueError:
            return None


@dataclass(frozen=True)
class ThemeRecord:
    """A theme as stored: identity, current (or pinned) version and that version's data."""

    id: uuid.UUID
    name: str
    version: int
    data: ThemeData
    builtin: bool
    pack: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class ThemeVersionRecord:
    """One immutable version."""

    theme_id: uuid.UUID
    version: int
    data: ThemeData
    created_at: datetime


@dataclass(frozen=True)
class ResolvedTheme:
    """A theme resolved for one request: the flat style plus what a job records to reproduce it.

    Attributes:
        id: The theme's id.
        name: Its name.
        version: The version used.
        variation: The variation applied, or None.
        style: The resolved style the composer applies.
        chain: ``(name, version)`` of every theme in the chain, root first.
        warnings: Quality notes (prompt fragments past the text encoder's window, ...).
    """

    id: uuid.UUID
    name: str
    version: int
    variation: str | None
    style: Style
    chain: tuple[tuple[str, int], ...]
    warnings: tuple[str, ...] = field(default=())

    def record(self) -> dict[str, object]:
        """The JSON a job and its images keep about the theme."""
        return {
            "id": str(self.id),
            "name": self.name,
            "version": self.version,
            "variation": self.variation,
            "chain": [{"name": n, "version": v} for n, v in self.chain],
        }


class ThemeNotFound(LookupError):
    """No live theme has this name or id (or not that version)."""

    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref

    def __str__(self) -> str:
        return f"no theme {self.ref!r}"


class ThemeConflict(Exception):
    """The change conflicts with what is stored (a taken name, children, recent jobs)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, param)
        self.message = message
        self.param = param

    def __str__(self) -> str:
        return self.message


class ThemeReadOnly(Exception):
    """Built-in themes are data files in the repository: they cannot be changed through the API. Shared themes
    (``shared``: the open tenant's, seen from a tenant's scope) are read-only to tenants."""

    def __init__(self, name: str, shared: bool = False) -> None:
        super().__init__(name, shared)
        self.name = name
        self.shared = shared

    def __str__(self) -> str:
        if self.shared:
            return (
                f"theme {self.name!r} is shared and read-only here; create your own theme named {self.name!r} "
                "(it takes the shared one's place for you) or one with it as parent"
            )
        return f"theme {self.name!r} is built in and read-only; create a theme with parent {self.name!r} to change it"
