"""The built-in theme packs: read-only themes shipped as YAML data files, usable as parents.

Each pack is a folder here, ``<pack>/<theme>.yaml``, one theme per file named after it and parsed by
:func:`pipelines.styles.theme_from_dict` (the same strict parser user themes go through):

- ``core``: the tabletop looks (``tabletop`` → ``fantasy`` → ``ink-and-wash`` → ``ink-and-wash-sumi``,
  grimdark oil, watercolour atlas, gothic horror, pulp sci-fi, isometric pixel art, blueprint dungeon,
  storybook);
- ``experimance``: the installation's era/biome styles, a root ``experimance`` whose variations are the
  biomes and one child per era (see :mod:`serve_app.experimance.styles`).

Nothing is read at import; each pack is read once, on first use, and kept.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources
from typing import Final

import yaml

from pipelines.errors import InputError
from pipelines.styles import ThemeData, theme_from_dict

__all__ = ["PACKS", "PackError", "builtin_theme", "builtin_themes", "load_pack", "pack_of"]

PACKS: Final = ("core", "experimance")
"""The pack names, in the order :func:`builtin_themes` lists them (a pack may use an earlier one's themes as
parents)."""


class PackError(ValueError):
    """A pack's data file does not parse, is misnamed, or two built-in themes share a name (a packaging bug)."""


def load_pack(name: str) -> list[ThemeData]:
    """The themes of one pack, parents before children (then by name).

    Args:
        name: One of :data:`PACKS`.

    Raises:
        InputError: ``name`` is not a pack (param ``pack``).
        PackError: A data file is broken.
    """
    if name not in PACKS:
        raise InputError("pack", name, f"one of {', '.join(PACKS)}")
    return list(_pack(name))


def builtin_themes(packs: Iterable[str] | None = None) -> list[tuple[str, ThemeData]]:
    """The built-in themes as ``(pack, theme)``: packs in :data:`PACKS` order, parents before children.

    Args:
        packs: The packs to include (each one of :data:`PACKS`); None for all. A pack whose themes name a
            parent in a pack left out still lists them; resolving such a theme then finds no parent.

    Raises:
        InputError: A name in ``packs`` is not a pack (param ``pack``).
        PackError: A data file is broken or two packs define the same theme name.
    """
    chosen = set(PACKS if packs is None else packs)
    unknown = sorted(chosen - set(PACKS))
    if unknown:
        raise InputError("pack", unknown[0], f"one of {', '.join(PACKS)}")
    return [(pack, theme) for pack, theme in _index().values() if pack in chosen]


def builtin_theme(name: str) -> ThemeData | None:
    """The built-in theme called ``name``, or None (a ``lookup`` for :func:`pipelines.styles.theme_chain`)."""
    found = _index().get(name)
    return None if found is None else found[1]


def pack_of(name: str) -> str | None:
    """The pack that defines the built-in theme ``name``, or None when it is not built in."""
    found = _index().get(name)
    return None if found is None else found[0]


@functools.cache
def _index() -> dict[str, tuple[str, ThemeData]]:
    index: dict[str, tuple[str, ThemeData]] = {}
    for pack in PACKS:
        for theme in _pack(pack):
            if theme.name in index:
                raise PackError(f"theme {theme.name!r} is defined by packs {index[theme.name][0]!r} and {pack!r}")
            index[theme.name] = (pack, theme)
    return index


@functools.cache
def _pack(name: str) -> tuple[ThemeData, ...]:
    folder = resources.files(__name__).joinpath(name)
    themes: list[ThemeData] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        where = f"{name}/{entry.name}"
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
            theme = theme_from_dict(data if data is not None else {})
        except (yaml.YAMLError, InputError) as exc:
            raise PackError(f"{where}: {exc}") from exc
        if theme.name != entry.name.removesuffix(".yaml"):
            raise PackError(f"{where}: names theme {theme.name!r}; the file must be named after its theme")
        themes.append(theme)
    if not themes:
        raise PackError(f"pack {name!r} has no themes")
    return tuple(_parents_first(themes))


def _parents_first(themes: Iterable[ThemeData]) -> list[ThemeData]:
    """Orders themes so each comes after its parent when the parent is in the same list (stable otherwise),
    which is the order a store must insert them in to link parents."""
    pending = list(themes)
    names = {theme.name for theme in pending}
    placed: set[str] = set()
    ordered: list[ThemeData] = []
    while pending:
        ready = [t for t in pending if t.parent is None or t.parent not in names or t.parent in placed]
        if not ready:
            raise PackError(f"themes {sorted(t.name for t in pending)} form a parent cycle")
        for theme in ready:
            ordered.append(theme)
            placed.add(theme.name)
        pending = [t for t in pending if t.name not in placed]
    return ordered
