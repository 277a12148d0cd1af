"""Face restorers: the licence rule at config time and at load time, and the restore path of face-fix, against a
stand-in for spandrel (the real one lives in the gpu extra) whose 'model' inverts colours, so the result is known."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from pipelines import encode
from pipelines.enhance.faces import FaceCrop, FaceFixSettings
from pipelines.errors import InputError
from serve_app.config import EnhancerConfig, FaceRestorerConfig
from serve_app.enhance.stage import EnhancerStage, FacePlan


def _fake_spandrel(monkeypatch: pytest.MonkeyPatch, architecture: str, purpose: str = "FaceSR") -> list[str]:
    loaded: list[str] = []

    class Descriptor:
        def __init__(self) -> None:
            self.architecture = types.SimpleNamespace(name=architecture)
            self.purpose = purpose

        def __call__(self, tensor: Any) -> Any:
            return 1.0 - tensor

    class ModelLoader:
        def __init__(self, device: str = "cpu") -> None:
            self.device = device

        def load_from_file(self, path: str) -> Descriptor:
            loaded.append(path)
            return Descriptor()

    module = types.ModuleType("spandrel")
    module.ModelLoader = ModelLoader  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spandrel", module)
    return loaded


@pytest.mark.parametrize("licence", ["S-Lab-1.0", "CC-BY-NC-4.0", "s-lab license 1.0"])
def test_a_non_commercial_restorer_needs_an_acknowledgement(licence: str) -> None:
    with pytest.raises(ValidationError, match="non-commercial"):
        FaceRestorerConfig(path="/models/codeformer.pth", license=licence)
    assert FaceRestorerConfig(path="/m.pth", license=licence, acknowledge_non_commercial=True).license == licence


def test_a_commercially_licensed_restorer_needs_none() -> None:
    assert FaceRestorerConfig(path="/models/GFPGANv1.4.pth", license="Apache-2.0").acknowledge_non_commercial is False


def test_a_codeformer_file_is_refused_whatever_licence_the_config_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.enhance.restore import load_restorer

    _fake_spandrel(monkeypatch, "CodeFormer")
    with pytest.raises(InputError) as bad:
        load_restorer("/models/cf.pth", acknowledged_non_commercial=False, device="cpu")
    assert bad.value.param == "face_restorer"
    assert load_restorer("/models/cf.pth", acknowledged_non_commercial=True, device="cpu") is not None


def test_a_model_that_is_not_a_face_restorer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.enhance.restore import load_restorer

    _fake_spandrel(monkeypatch, "ESRGAN", purpose="SR")
    with pytest.raises(InputError, match="face restoration"):
        load_restorer("/models/x4.pth", acknowledged_non_commercial=False, device="cpu")


async def test_restore_faces_runs_every_crop_through_the_restorer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loaded = _fake_spandrel(monkeypatch, "GFPGAN")
    config = EnhancerConfig(face_restorer=FaceRestorerConfig(path=str(tmp_path / "gfpgan.pth"), license="Apache-2.0"))
    stage = EnhancerStage(config, tmp_path)
    rng = np.random.default_rng(1)
    crops = []
    for side in (64, 96):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        mask = Image.new("L", (side, side), 255)
        crops.append(FaceCrop(box=(0, 0, side, side), crop=Image.fromarray(pixels), mask=mask))
    plan = FacePlan(faces=((c.box, 0.9) for c in crops), crops=tuple(crops), detector="haar")  # type: ignore[arg-type]
    restored = await stage.restore_faces(plan)
    assert loaded == [str(tmp_path / "gfpgan.pth")]  # loaded once for both crops
    for crop, data in zip(crops, restored, strict=True):
        out = np.asarray(encode.decode(data).convert("RGB")).astype(int)
        expected = 255 - np.asarray(crop.crop).astype(int)  # the stand-in inverts
        assert out.shape == expected.shape and np.abs(out - expected).max() <= 1


def test_restorer_settings_stay_out_of_the_pure_face_settings() -> None:
    from serve_app.enhance.models import FaceFixBody

    settings = FaceFixBody(restorer=True).to_settings()
    assert isinstance(settings, FaceFixSettings)
