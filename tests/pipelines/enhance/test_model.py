"""The compact upscaler net against a forward pass written here, its files, spandrel's door, and tiled inference
against untiled inference where the net's receptive field allows it."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn import functional

from pipelines.enhance import model as model_module
from pipelines.enhance.model import (
    COMPACT_ARCH,
    Upscaler,
    build_compact,
    default_model_path,
    ensure_default_model,
    load_upscaler,
    save_model,
    upscale_with_model,
)
from pipelines.enhance.tiles import tile_plan
from pipelines.errors import InputError


def make_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour ramps plus noise, so both flat areas and detail run through the net."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    smooth = np.stack([x * 200 / width, y * 200 / height, 100 + 50 * np.sin(x / 4.0 + y / 7.0)], axis=-1)
    pixels = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def my_compact_forward(state: dict[str, torch.Tensor], x: torch.Tensor, scale: int, num_conv: int) -> torch.Tensor:
    """SRVGGNetCompact written out: conv+PReLU, num_conv more, conv, pixel shuffle, plus the nearest upscale."""
    out = x
    for i in range(num_conv + 1):
        out = functional.conv2d(out, state[f"body.{2 * i}.weight"], state[f"body.{2 * i}.bias"], padding=1)
        out = functional.prelu(out, state[f"body.{2 * i + 1}.weight"])
    last = 2 * num_conv + 2
    out = functional.conv2d(out, state[f"body.{last}.weight"], state[f"body.{last}.bias"], padding=1)
    out = functional.pixel_shuffle(out, scale)
    return out + x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)


def test_compact_has_real_esrgans_layout_and_forward() -> None:
    net = build_compact(scale=3, num_feat=8, num_conv=2, seed=5)
    state = net.state_dict()
    shapes = {name: tuple(t.shape) for name, t in state.items()}
    assert shapes == {
        "body.0.weight": (8, 3, 3, 3),
        "body.0.bias": (8,),
        "body.1.weight": (8,),
        "body.2.weight": (8, 8, 3, 3),
        "body.2.bias": (8,),
        "body.3.weight": (8,),
        "body.4.weight": (8, 8, 3, 3),
        "body.4.bias": (8,),
        "body.5.weight": (8,),
        "body.6.weight": (27, 8, 3, 3),
        "body.6.bias": (27,),
    }
    assert isinstance(net, torch.nn.Module) and isinstance(net, model_module.CompactSR)
    assert net.scale == 3 and net.receptive_radius == 4
    x = as_tensor(make_image(23, 17))
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), my_compact_forward(state, x, 3, 2).numpy(), atol=1e-5)


def test_weights_are_fixed_by_the_seed() -> None:
    a, b, c = build_compact(seed=1234), build_compact(seed=1234), build_compact(seed=99)
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name])
    assert not torch.equal(a.state_dict()["body.0.weight"], c.state_dict()["body.0.weight"])
    assert torch.all(a.state_dict()["body.1.weight"] == 0.25)
    assert a.state_dict()["body.0.bias"].abs().max() > 0  # biases are drawn too, so loading them is tested


def test_the_net_adds_a_small_residual_to_the_nearest_upscale() -> None:
    mid = np.asarray(make_image(40, 30), dtype=np.float64) * 0.6 + 50  # inputs within 50..203
    image = Image.fromarray(mid.astype(np.uint8), "RGB")
    out = np.asarray(Upscaler(build_compact(), 2, name="CompactSR")(image), dtype=np.float64)
    nearest = np.asarray(image, dtype=np.float64).repeat(2, axis=0).repeat(2, axis=1)
    residual = np.abs(out - nearest)
    assert out.shape == (60, 80, 3)
    assert 1 < residual.mean() < 20  # it changes the picture, by a few grey levels, not into noise
    assert (out == 255).mean() < 0.01 and (out == 0).mean() < 0.01


def test_receptive_radius_is_what_one_pixel_reaches() -> None:
    net = build_compact(num_conv=4)  # radius 6
    upscaler = Upscaler(net, 2, name="CompactSR", receptive_radius=net.receptive_radius)
    pixels = np.asarray(make_image(40, 40), dtype=np.float32) / 255
    poked = pixels.copy()
    poked[20, 20] = 1.0 - poked[20, 20]
    diff = np.abs(upscaler.run(poked[None])[0] - upscaler.run(pixels[None])[0]).max(axis=-1)
    changed = np.argwhere(diff > 0) // 2  # back to input pixels
    reach = np.abs(changed - 20).max()
    assert reach == upscaler.receptive_radius == 6


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_save_then_load_gives_identical_outputs(tmp_path: Path, suffix: str) -> None:
    net = build_compact(scale=2, num_feat=12, num_conv=3, seed=42)
    path = save_model(net, tmp_path / "sub" / f"net{suffix}")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    loaded = load_upscaler(path)
    assert (loaded.scale, loaded.name, loaded.receptive_radius) == (2, "CompactSR", 5)
    image = make_image(33, 21)
    assert np.array_equal(np.asarray(loaded(image)), np.asarray(Upscaler(net, 2, name="CompactSR")(image)))
    for name, tensor in net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[name], tensor)  # type: ignore[attr-defined]


def test_safetensors_file_carries_the_config_in_its_metadata(tmp_path: Path) -> None:
    path = save_model(build_compact(scale=3, num_feat=8, num_conv=2), tmp_path / "net.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        keys = set(handle.keys())
    assert metadata["limner_arch"] == COMPACT_ARCH
    config = json.loads(metadata["limner_config"])
    assert config == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 2, "upscale": 3, "act_type": "prelu"}
    assert keys == {f"body.{i}.weight" for i in range(7)} | {f"body.{i}.bias" for i in (0, 2, 4, 6)}


def test_a_damaged_compact_file_is_refused_naming_model_path(tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in build_compact().state_dict().items()}
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path), metadata={"limner_arch": COMPACT_ARCH, "limner_config": "{not json"})
    with pytest.raises(InputError) as err:
        load_upscaler(path)
    assert err.value.param == "model_path"
    save_file(state, str(path), metadata={"limner_arch": COMPACT_ARCH, "limner_config": '{"upscale": 2, "x": 1}'})
    with pytest.raises(InputError) as err:
        load_upscaler(path)
    assert err.value.param == "model_path"
    save_file(state, str(path), metadata={"limner_arch": COMPACT_ARCH, "limner_config": '{"upscale": 3}'})
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_upscaler(path)  # the x3 config does not fit x2 weights
    with pytest.raises(FileNotFoundError):
        load_upscaler(tmp_path / "missing.safetensors")


def test_other_weights_need_spandrel_and_say_which_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "RealESRGAN_x2.safetensors"
    save_file({k: v.contiguous() for k, v in build_compact().state_dict().items()}, str(path))  # no limner marker
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel raises ImportError
    with pytest.raises(ImportError, match=r"spandrel.*`gpu` extra"):
        load_upscaler(path)
    pth = tmp_path / "other.pth"
    torch.save({"params": build_compact().state_dict()}, pth)
    with pytest.raises(ImportError, match="gpu"):
        load_upscaler(pth)


def fake_spandrel(purpose: str, channels: int = 3) -> types.ModuleType:
    """Stands in for spandrel's API (ModelLoader, ImageModelDescriptor), wrapping a compact net."""
    module = types.ModuleType("spandrel")

    class ImageModelDescriptor:
        def __init__(self, net: torch.nn.Module) -> None:
            self.model = net
            self.purpose = purpose
            self.scale = 2
            self.input_channels = self.output_channels = channels
            self.architecture = types.SimpleNamespace(name="RealESRGAN Compact")
            self.moved: list[Any] = []

        def to(self, device: Any = None, dtype: Any = None) -> ImageModelDescriptor:
            self.moved.append((device, dtype))
            return self

        def eval(self) -> ImageModelDescriptor:
            return self

        def __call__(self, image: torch.Tensor) -> torch.Tensor:
            assert image.shape[0] == 1  # spandrel's call takes one image
            return self.model(image).clamp_(0, 1)

    class ModelLoader:
        def __init__(self, device: Any = None) -> None:
            self.device = device

        def load_from_file(self, path: str) -> ImageModelDescriptor:
            return ImageModelDescriptor(build_compact(seed=7))

    module.ImageModelDescriptor = ImageModelDescriptor  # type: ignore[attr-defined]
    module.ModelLoader = ModelLoader  # type: ignore[attr-defined]
    return module


def test_other_weights_load_through_spandrel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "4x_foreign.pth"
    path.write_bytes(b"not ours")  # not a pickle of tensors: handed to spandrel untouched
    monkeypatch.setitem(sys.modules, "spandrel", fake_spandrel("SR"))
    upscaler = load_upscaler(path)
    assert (upscaler.scale, upscaler.name, upscaler.max_batch) == (2, "RealESRGAN Compact", 1)
    assert upscaler.net.moved == [(torch.device("cpu"), torch.float32)]  # type: ignore[attr-defined]
    image = make_image(70, 70)
    tiled = upscale_with_model(upscaler, image, tile=64, overlap=16)  # tiles go one per call
    reference = upscale_with_model(Upscaler(build_compact(seed=7), 2, name="x"), image, tile=64, overlap=16)
    assert np.array_equal(np.asarray(tiled), np.asarray(reference))
    for purpose, channels in (("FaceSR", 3), ("SR", 1)):
        monkeypatch.setitem(sys.modules, "spandrel", fake_spandrel(purpose, channels))
        with pytest.raises(InputError) as err:
            load_upscaler(path)
        assert err.value.param == "model_path"


def context_mask(plan: list[Any], width: int, height: int, radius: int) -> np.ndarray:
    """Input pixels that every tile covering them sees at least ``radius`` pixels around (or to the image edge)."""
    ok = np.ones((height, width), dtype=bool)
    ys, xs = np.mgrid[0:height, 0:width]
    for t in plan:
        left, top, right, bottom = t.box
        inside = (xs >= left) & (xs < right) & (ys >= top) & (ys < bottom)
        room = np.full((height, width), np.inf)
        if left > 0:
            room = np.minimum(room, xs - left)
        if right < width:
            room = np.minimum(room, right - 1 - xs)
        if top > 0:
            room = np.minimum(room, ys - top)
        if bottom < height:
            room = np.minimum(room, bottom - 1 - ys)
        ok &= ~inside | (room >= radius)
    return ok


def test_tiled_inference_equals_untiled_where_the_receptive_field_allows() -> None:
    net = build_compact(num_conv=4)
    upscaler = Upscaler(net, 2, name="CompactSR", receptive_radius=net.receptive_radius)
    image = make_image(150, 100, seed=1)
    whole = np.asarray(upscaler(image), dtype=np.int64)
    tiled = np.asarray(upscale_with_model(upscaler, image, tile=64, overlap=16), dtype=np.int64)
    assert tiled.shape == whole.shape == (200, 300, 3)
    plan = tile_plan(150, 100, 64, 16)
    assert len(plan) == 6
    mask = context_mask(plan, 150, 100, 6).repeat(2, axis=0).repeat(2, axis=1)
    assert 0.5 < mask.mean() < 0.95  # the check covers most pixels, and leaves the tile edges out
    diff = np.abs(tiled - whole)
    assert diff[mask].max() <= 1  # float rounding only
    assert (diff[mask] == 0).mean() > 0.99
    assert diff.mean() < 0.5  # and the feathering keeps the rest close


def test_tiles_that_only_meet_show_their_edges() -> None:
    # 128 = 2 x 64: with no overlap the tiles only meet, and pixels beside the cut, lacking context, do differ,
    # so the check above can fail.
    net = build_compact(num_conv=4)
    upscaler = Upscaler(net, 2, name="CompactSR")
    image = make_image(128, 128, seed=1)
    whole = np.asarray(upscaler(image), dtype=np.int64)
    tiled = np.asarray(upscale_with_model(upscaler, image, tile=64, overlap=0), dtype=np.int64)
    plan = tile_plan(128, 128, 64, 0)
    assert [t.box for t in plan] == [(0, 0, 64, 64), (64, 0, 128, 64), (0, 64, 64, 128), (64, 64, 128, 128)]
    mask = context_mask(plan, 128, 128, 6).repeat(2, axis=0).repeat(2, axis=1)
    assert np.abs(tiled - whole)[mask].max() <= 1
    assert np.abs(tiled - whole)[~mask].max() > 3
    # Over 150 pixels, even spreading shares 21 columns between tiles even at overlap 0: the cut sits 10.5
    # pixels from either edge, past the radius of 6, and the tiled result is the untiled one.
    image = make_image(150, 100, seed=1)
    tiled = np.asarray(upscale_with_model(upscaler, image, tile=64, overlap=0), dtype=np.int64)
    assert np.abs(tiled - np.asarray(upscaler(image), dtype=np.int64)).max() <= 1


@pytest.mark.parametrize(("scale", "size"), [(2, (75, 51)), (3, (41, 67)), (1, (64, 65))])
def test_output_is_exactly_scale_times_the_input(scale: int, size: tuple[int, int]) -> None:
    upscaler = Upscaler(build_compact(scale=scale, num_feat=8, num_conv=1), scale, name="CompactSR")
    out = upscale_with_model(upscaler, make_image(*size), tile=64, overlap=8)
    assert out.size == (size[0] * scale, size[1] * scale) and out.mode == "RGB"


class OomBelow:
    """A stand-in net that runs out of memory on tiles wider than ``limit``, recording each tile size tried."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tried: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.tried.append(x.shape[-1])
        if x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def test_out_of_memory_halves_the_tile_down_to_128() -> None:
    image = make_image(300, 200)
    net = OomBelow(128)
    out = upscale_with_model(Upscaler(net, 2, name="oom"), image, tile=512, overlap=100)
    assert net.tried[:2] == [300, 256] and set(net.tried[2:]) == {128}
    nearest = np.asarray(image).repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(np.asarray(out), nearest)  # tiles of a pure upscale blend back exactly
    with pytest.raises(torch.OutOfMemoryError):
        upscale_with_model(Upscaler(OomBelow(64), 2, name="oom"), image, tile=512, overlap=32)


def test_a_net_that_returns_the_wrong_size_is_an_error() -> None:
    upscaler = Upscaler(lambda x: x, 2, name="identity")
    with pytest.raises(RuntimeError, match="not x2"):
        upscaler(make_image(10, 10))


def test_tiling_errors_name_the_field() -> None:
    upscaler = Upscaler(build_compact(), 2, name="CompactSR")
    for kwargs, param in (({"tile": 60}, "tile"), ({"tile": 64, "overlap": 32}, "overlap")):
        with pytest.raises(InputError) as err:
            upscale_with_model(upscaler, make_image(10, 10), **kwargs)
        assert err.value.param == param


def test_save_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        save_model(torch.nn.Conv2d(3, 3, 3), tmp_path / "x.safetensors")
    assert err.value.param == "model"
    with pytest.raises(InputError) as err:
        save_model(build_compact(), tmp_path / "x.onnx")
    assert err.value.param == "path"
    with pytest.raises(InputError) as err:
        build_compact(scale=5)
    assert err.value.param == "upscale"


def test_default_model_is_built_once_and_loads(tmp_path: Path) -> None:
    path = default_model_path(tmp_path)
    assert path == tmp_path.resolve() / "limner-compact-x2-s1234-v1.safetensors"
    assert ensure_default_model(tmp_path) == path
    stamp = path.stat().st_mtime_ns, path.stat().st_ino
    assert ensure_default_model(tmp_path) == path
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == stamp  # not rewritten
    upscaler = load_upscaler(path)
    assert upscaler.scale == 2
    image = make_image(30, 20)
    assert np.array_equal(np.asarray(upscaler(image)), np.asarray(Upscaler(build_compact(), 2, name="x")(image)))


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import pipelines.enhance.model, pipelines.enhance.upscale, pipelines.enhance.tiles\n"
        "heavy = [m for m in ('torch', 'spandrel', 'safetensors') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])


def test_exports() -> None:
    assert len(model_module.__all__) == len(set(model_module.__all__))
    for name in model_module.__all__:
        assert getattr(model_module, name) is not None
    with pytest.raises(AttributeError):
        model_module.NotThere  # noqa: B018
