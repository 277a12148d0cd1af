"""Paid image APIs as limner backends: getimg, fal, openai and runware, over one HTTP transport.

Each backend lives in its own module, imported only when asked for (:func:`backend_class`), so importing this
package does no work.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.remote.base import RemoteBackend

__all__ = ["BACKENDS", "backend_class"]

BACKENDS: tuple[str, ...] = ("getimg", "fal", "openai", "runware")
"""The remote backends limner knows, by name."""


def backend_class(name: str) -> type[RemoteBackend]:
    """The backend class called ``name``, its module imported now.

    Args:
        name: One of :data:`BACKENDS`.

    Returns:
        The :class:`pipelines.remote.base.RemoteBackend` subclass whose ``name`` is ``name``.

    Raises:
        ValueError: ``name`` is not one of :data:`BACKENDS`.
    """
    from pipelines.remote.base import RemoteBackend

    if name not in BACKENDS:
        raise ValueError(f"unknown remote backend {name!r}: one of {', '.join(BACKENDS)}")
    module = importlib.import_module(f"pipelines.remote.{name}")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, RemoteBackend) and getattr(value, "name", None) == name:
            return value
    raise ValueError(f"pipelines.remote.{name} defines no RemoteBackend named {name!r}")
