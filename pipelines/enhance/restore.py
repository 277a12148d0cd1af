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

from PIL import Image

from pipelines.errors import InputError

__all__ = [
    "NON_COMMERCIAL_ARCHITECTURES",
    "NON_COMMERCIAL_LICENSES",
    "is_non_commercial",
    "load_restorer",
    "restore",
]

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


def restore(restorer: Any, image: Image.Image) -> Image.Image:
    """One face crop through a restorer (a callable on ``1 x 3 x H x W`` float tensors in 0..1, as spandrel's
    descriptors are), at the crop's size."""
    import numpy as np
    import torch

    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    device = getattr(restorer, "device", None)
    if device is not None:
        tensor = tensor.to(device)
    with torch.inference_mode():
        out = restorer(tensor)
    array = out.squeeze(0).permute(1, 2, 0).clamp(0, 1).float().cpu().numpy()
    result = Image.fromarray((array * 255.0 + 0.5).astype(np.uint8), "RGB")
    return result if result.size == image.size else result.resize(image.size, Image.Resampling.LANCZOS)
