"""Face restorers (GFPGAN, CodeFormer and the like) from a local weights file, on GPU nodes.

They load through spandrel (the ``gpu`` extra) and are never downloaded. Licences differ and travel with the
weights, not the code: GFPGAN's weights are Apache-2.0; CodeFormer's are under the S-Lab License 1.0, which allows
non-commercial use only (spandrel itself keeps CodeFormer out of its main package for that reason, in
``spandrel_extra_arches``). The config names the licence it read; a non-commercial one is refused unless the config
acknowledges it (:class:`serve_app.config.FaceRestorerConfig`), and a file whose architecture is known to be
non-commercial is refused by :func:`load_restorer` whatever licence the config claims.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.errors import InputError

__all__ = ["NON_COMMERCIAL_ARCHITECTURES", "NON_COMMERCIAL_LICENSES", "is_non_commercial", "load_restorer"]

NON_COMMERCIAL_LICENSES = ("s-lab", "cc-by-nc", "non-commercial", "noncommercial", "nc-")
"""Licence names (lower case, matched as substrings) that allow non-commercial use only."""
NON_COMMERCIAL_ARCHITECTURES = ("CodeFormer",)
"""spandrel architecture names whose weights are non-commercial."""


def is_non_commercial(license: str) -> bool:
    """Whether a licence name allows non-commercial use only (``S-Lab-1.0``, ``CC-BY-NC-4.0``...)."""
    name = license.strip().lower()
    return any(marker in name for marker in NON_COMMERCIAL_LICENSES)


def load_restorer(path: str | Path, *, acknowledged_non_commercial: bool, device: str = "cuda") -> Any:
    """A face restorer from ``path`` through spandrel (a ``spandrel.ImageModelDescriptor``).

    Raises:
        InputError: spandrel is not installed (``face_restorer``: install the ``gpu`` extra), the file is not a
            face restorer, or its architecture is non-commercial and not acknowledged.
    """
    try:
        import spandrel
    except ImportError:
        raise InputError("face_restorer", str(path), "a restorer on a node with the gpu extra (spandrel)") from None
    descriptor = spandrel.ModelLoader(device=device).load_from_file(str(path))
    name = descriptor.architecture.name
    if name in NON_COMMERCIAL_ARCHITECTURES and not acknowledged_non_commercial:
        raise InputError("face_restorer", name, "a commercially licensed restorer, or acknowledge_non_commercial")
    if getattr(descriptor, "purpose", None) != "FaceSR":
        raise InputError("face_restorer", name, "a face restoration model (GFPGAN, CodeFormer, RestoreFormer)")
    return descriptor
