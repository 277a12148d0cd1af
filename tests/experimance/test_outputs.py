"""serve_app/experimance/outputs.py: the output folder's layout, encoding, fallback images and latest link."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serve_app.experimance.config import FallbackConfig, OutputRetention
from serve_app.experimance.outputs import OutputFolder, _newest_image, _safe_name


def _encoded(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _open(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image


def _mean(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))


@pytest.fixture
def folder(tmp_path: Path) -> OutputFolder:
    out = OutputFolder(tmp_path / "cache", image_format="jpeg", jpeg_quality=92)
    out.prepare()
    return out


def test_prepare_makes_the_root_absolute_and_creates_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = OutputFolder(Path("relative/cache"))
    assert out.root == Path("relative/cache")
    assert out.prepare() == tmp_path / "relative" / "cache"
    assert out.root.is_absolute() and out.root.is_dir()


@pytest.mark.parametrize(("image_format", "ext"), [("jpeg", "jpg"), ("png", "png")])
def test_images_go_to_their_era_biome_pool(tmp_path: Path, image_format: str, ext: str) -> None:
    out = OutputFolder(tmp_path, image_format=image_format)  # type: ignore[arg-type]
    out.prepare()
    pooled = out.write("r-1", b"first", era="wilderness", biome="forest")
    loose = out.write("r-2", b"second", era=None, biome=None)
    assert pooled.parent == tmp_path / "wilderness" / "forest"
    assert loose.parent == tmp_path
    assert out.ext == ext and pooled.suffix == loose.suffix == f".{ext}"
    assert pooled.name.startswith("limner_") and pooled.stem.endswith("_r-1")
    assert pooled.read_bytes() == b"first" and loose.read_bytes() == b"second"
    assert out.pool_dir("wilderness", None) == tmp_path  # half an era/biome pair is no pool


def test_file_names_are_safe_and_unique(folder: OutputFolder) -> None:
    assert _safe_name("plain_id-1") == "plain_id-1"
    odd = _safe_name("../etc/passwd")
    assert "/" not in odd and "." not in odd
    assert _safe_name("a/b") != _safe_name("a_b") and _safe_name("a b") != _safe_name("a/b")
    assert len(_safe_name("x" * 500)) <= 80 + 11
    path = folder.write("../../escape", b"data", era=None, biome=None)
    assert path.parent == folder.root


def test_encode_passes_bytes_through_that_already_fit(folder: OutputFolder) -> None:
    jpeg = _encoded(Image.new("RGB", (64, 32), (10, 200, 30)), "JPEG", quality=50)
    assert folder.encode(jpeg, (64, 32)) == jpeg


@pytest.mark.parametrize(
    ("result", "why"),
    [
        (_encoded(Image.new("RGB", (64, 32), (10, 200, 30)), "PNG"), "another format"),
        (_encoded(Image.new("RGB", (128, 64), (10, 200, 30)), "JPEG"), "another size"),
        (Image.new("RGB", (128, 128), (10, 200, 30)), "a PIL image"),
    ],
)
def test_encode_re_encodes_to_the_format_and_size(folder: OutputFolder, result: bytes | Image.Image, why: str) -> None:
    data = folder.encode(result, (64, 32))
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size) == ("JPEG", (64, 32)), why
    assert np.abs(_mean(image) - (10, 200, 30)).max() < 4


def test_encode_drops_alpha_as_the_bridge_always_has(tmp_path: Path) -> None:
    out = OutputFolder(tmp_path, image_format="png")
    transparent_red = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    image = Image.open(io.BytesIO(out.encode(transparent_red, (16, 16))))
    assert image.mode == "RGB" and image.getpixel((8, 8)) == (255, 0, 0)


def test_encode_refuses_what_is_not_an_image(folder: OutputFolder) -> None:
    with pytest.raises(TypeError, match="expected bytes or a PIL image"):
        folder.encode("a path?", (8, 8))  # type: ignore[arg-type]


def test_fallback_is_neutral_when_there_is_no_previous_image(folder: OutputFolder) -> None:
    data, source = folder.fallback_image((40, 24), era="modern", biome="desert")
    assert source is None
    image = Image.open(io.BytesIO(data))
    assert image.size == (40, 24)
    assert np.abs(_mean(image) - FallbackConfig().color).max() < 3


def test_fallback_prefers_the_remembered_image_then_the_newest_file(folder: OutputFolder) -> None:
    pool = folder.pool_dir("modern", "desert")
    pool.mkdir(parents=True)
    older = pool / "older.jpg"
    older.write_bytes(_encoded(Image.new("RGB", (32, 32), (200, 0, 0)), "JPEG"))
    os.utime(older, (time.time() - 100, time.time() - 100))
    newer = pool / "newer.png"
    newer.write_bytes(_encoded(Image.new("RGB", (32, 32), (0, 0, 200)), "PNG"))
    (pool / ".hidden.jpg").write_bytes(b"not even an image")
    data, source = folder.fallback_image((16, 16), era="modern", biome="desert")
    assert source == newer and np.abs(_mean(Image.open(io.BytesIO(data))) - (0, 0, 200)).max() < 4

    # The image this folder wrote last for the pair wins over whatever file is newest.
    remembered = folder.write(
        "r-9", folder.encode(Image.new("RGB", (16, 16), (0, 200, 0)), (16, 16)), era="modern", biome="desert"
    )
    os.utime(remembered, (time.time() - 1000, time.time() - 1000))
    _, source = folder.fallback_image((16, 16), era="modern", biome="desert")
    assert source == remembered


def test_write_fallback_goes_apart_and_remembers_its_source(folder: OutputFolder) -> None:
    pool = folder.pool_dir("future", "coast")
    pool.mkdir(parents=True)
    previous = pool / "previous.jpg"
    previous.write_bytes(_encoded(Image.new("RGB", (32, 32), (90, 90, 250)), "JPEG"))
    path = folder.write_fallback("r-1", (20, 20), era="future", biome="coast")
    assert path.parent == folder.root / "fallback"
    assert _open(path).size == (20, 20)
    previous.unlink()
    # Remembered, and the fallback copy itself never joined the pool: with the source gone, neutral again.
    _, source = folder.fallback_image((20, 20), era="future", biome="coast")
    assert source is None
    assert _newest_image(pool) is None


def test_an_unusable_previous_image_falls_back_to_neutral(folder: OutputFolder) -> None:
    pool = folder.pool_dir("ruins", "tundra")
    pool.mkdir(parents=True)
    (pool / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    data, source = folder.fallback_image((8, 8), era="ruins", biome="tundra")
    assert source is None and Image.open(io.BytesIO(data)).size == (8, 8)


def test_use_previous_off_always_answers_neutral(tmp_path: Path) -> None:
    colour = (1, 2, 250)
    out = OutputFolder(tmp_path, image_format="png", fallback=FallbackConfig(use_previous=False, color=colour))
    out.prepare()
    out.write("r-1", _encoded(Image.new("RGB", (8, 8), (255, 255, 255)), "PNG"), era="a", biome="b")
    data, source = out.fallback_image((8, 8), era="a", biome="b")
    assert source is None and Image.open(io.BytesIO(data)).getpixel((0, 0)) == colour


def test_newest_image_skips_links_folders_temporaries_and_other_files(tmp_path: Path) -> None:
    assert _newest_image(tmp_path / "missing") is None
    real = tmp_path / "real.jpeg"
    real.write_bytes(b"x")
    os.utime(real, (time.time() - 50, time.time() - 50))
    (tmp_path / "notes.txt").write_bytes(b"x")
    (tmp_path / ".tmp-1234-real.jpeg.tmp").write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "link.jpg").symlink_to(real)
    assert _newest_image(tmp_path) == real


def test_latest_is_a_relative_link_re_pointed_in_place(folder: OutputFolder) -> None:
    first = folder.write("r-1", b"1", era="a", biome="b")
    second = folder.write("r-2", b"2", era=None, biome=None)
    folder.point_latest(first)
    link = folder.root / "latest.jpg"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == first.resolve()
    folder.point_latest(second)
    assert link.resolve() == second.resolve()
    assert sorted(p.name for p in folder.root.iterdir() if p.name.startswith(".")) == []


def test_a_latest_link_that_cannot_be_made_is_only_logged(
    folder: OutputFolder, monkeypatch: pytest.MonkeyPatch, experimance_log: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: object) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(os, "symlink", refuse)
    folder.point_latest(folder.root / "whatever.jpg")
    assert "cannot re-point" in experimance_log.text
    assert list(folder.root.iterdir()) == []


# -- retention (issue 8, finding 2) ------------------------------------------------------------------------------

NOW = 1_900_000_000.0


def _image(path: Path, age_s: float, data: bytes = b"img") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (NOW - age_s, NOW - age_s))
    return path


def test_prune_keeps_the_newest_n_per_pool_and_only_the_bridges_own_files(folder: OutputFolder) -> None:
    root = folder.root
    pools = [root, root / "fallback", root / "modern" / "desert", root / "ruins" / "arctic"]
    made = {pool: [_image(pool / f"limner_x_{i}.jpg", 1000 + 100 * i) for i in range(6)] for pool in pools}
    stock = _image(root / "modern" / "desert" / "mockimagegenerator_1.jpg", 99_999)  # the installation's
    notes = _image(root / "modern" / "desert" / "limner_notes.txt", 99_999)  # not an image
    report = folder.prune(OutputRetention(max_files=2, min_age_s=0), now=NOW)
    for pool, files in made.items():  # made[i] is older as i grows: the first two are the newest
        assert [p.exists() for p in files] == [True, True, False, False, False, False], pool
    assert stock.exists() and notes.exists()
    assert sorted(report.removed) == sorted(p for files in made.values() for p in files[2:])
    assert report.freed_bytes == 3 * len(report.removed) and report.kept == 2 * len(pools)


def test_prune_by_age_and_the_files_it_never_removes(folder: OutputFolder) -> None:
    pool = folder.pool_dir("modern", "desert")
    newest = _image(pool / "limner_a_newest.jpg", 10 * 3600)  # old, but the pool's newest: the fallback's
    old = [_image(pool / f"limner_b_{i}.jpg", 11 * 3600 + i) for i in range(4)]
    fresh = _image(pool / "limner_c_fresh.jpg", 5)  # younger than min_age_s, and now the pool's newest
    latest_target = old[3]
    folder.point_latest(latest_target)
    remembered = old[2]
    folder._newest[("ruins", "arctic")] = remembered  # what a fallback remembers is kept wherever it lives
    report = folder.prune(OutputRetention(max_files=None, max_age_hours=1, min_age_s=60), now=NOW)
    assert sorted(report.removed) == sorted([newest, old[0], old[1]])
    assert fresh.exists() and latest_target.exists() and remembered.exists()
    # The pool's newest is kept even when every limit says go: the fallback would otherwise find nothing.
    young = _image(pool / "limner_d_young.jpg", 30)
    fresh.unlink()
    report = folder.prune(OutputRetention(max_files=1, max_age_hours=1, min_age_s=0), now=NOW)
    assert young.exists() and young not in report.removed


def test_prune_never_removes_an_image_younger_than_min_age(folder: OutputFolder) -> None:
    pool = folder.pool_dir("future", "swamp")
    files = [_image(pool / f"limner_{i}.jpg", 10 + i) for i in range(5)]
    assert folder.prune(OutputRetention(max_files=1, min_age_s=60), now=NOW).removed == []
    assert all(p.exists() for p in files)


def test_prune_keeps_the_pool_newest_of_any_name(folder: OutputFolder) -> None:
    pool = folder.pool_dir("modern", "desert")
    ours = [_image(pool / f"limner_{i}.jpg", 1000 + i) for i in range(3)]
    _image(pool / "stock_newer.jpg", 10)  # the installation's, newest: the fallback picks that one
    report = folder.prune(OutputRetention(max_files=1, min_age_s=0), now=NOW)
    assert sorted(report.removed) == sorted(ours[1:])  # count limit: only the newest of ours stays


def test_an_oversize_previous_image_is_not_used_by_the_fallback(tmp_path: Path) -> None:
    out = OutputFolder(tmp_path, fallback=FallbackConfig(color=(5, 6, 7)), max_source_pixels=64 * 64)
    out.prepare()
    big = out.pool_dir("modern", "desert") / "big.png"
    big.parent.mkdir(parents=True)
    big.write_bytes(_encoded(Image.new("RGB", (65, 64), (250, 0, 0)), "PNG"))
    data, source = out.fallback_image((32, 32), era="modern", biome="desert")
    assert source is None and np.abs(_mean(Image.open(io.BytesIO(data))) - (5, 6, 7)).max() < 4
    size = big.stat().st_size
    small = OutputFolder(tmp_path, max_source_bytes=size - 1, max_source_pixels=65 * 64)
    small.prepare()
    assert small.fallback_image((32, 32), era="modern", biome="desert")[1] is None  # one byte over
    gif = out.pool_dir("ruins", "arctic") / "odd.jpg"  # named like an image, but a GIF: not decoded
    gif.parent.mkdir(parents=True)
    gif.write_bytes(_encoded(Image.new("RGB", (8, 8), (250, 0, 0)), "GIF"))
    assert out.fallback_image((32, 32), era="ruins", biome="arctic")[1] is None
    fitting = OutputFolder(tmp_path, max_source_pixels=65 * 64)
    fitting.prepare()
    assert fitting.fallback_image((32, 32), era="modern", biome="desert")[1] == big
