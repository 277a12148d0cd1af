"""Contract suite for the asset store, on a local directory and on fsspec's memory filesystem."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from serve_app.store import (
    AssetNotFound,
    FsspecAssetStore,
    InvalidAssetKey,
    UnsupportedFormat,
)


class Clock:
    """Epoch-seconds clock for blob ages; starts at the real time so real mtimes compare sensibly."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def _png(color: tuple[int, int, int, int] = (200, 30, 30, 255), size: tuple[int, int] = (16, 12)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, color).save(out, format="PNG")
    return out.getvalue()


def _make_store(kind: str, tmp_path: Path, clock: Clock) -> FsspecAssetStore:
    if kind == "local":
        return FsspecAssetStore(str(tmp_path / "assets"), clock=clock)
    if kind == "file-url":
        return FsspecAssetStore(f"file://{tmp_path / 'assets'}", clock=clock)
    return FsspecAssetStore(f"memory://limner-test-{uuid.uuid4().hex}/assets", clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["local", "file-url", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[FsspecAssetStore]:
    s = _make_store(request.param, tmp_path, clock)
    yield s
    if not s.is_local and s.fs.exists(s.root):
        s.fs.rm(s.root, recursive=True)


def _files(store: FsspecAssetStore) -> list[str]:
    if store.is_local:
        return sorted(str(p) for p in Path(store.root).rglob("*") if p.is_file())
    return sorted(store.fs.find(store.root)) if store.fs.exists(store.root) else []


def _set_age(store: FsspecAssetStore, path: str, clock: Clock, seconds: float) -> None:
    when = clock.now - seconds
    if store.is_local:
        os.utime(path, (when, when))
    else:
        store.fs.store[store.fs._strip_protocol(path)].modified = datetime.fromtimestamp(when, UTC)


# -- put and read ---------------------------------------------------------------------------------------------


async def test_put_is_content_addressed_with_fan_out(store: FsspecAssetStore) -> None:
    data = _png()
    sha = await store.put(data, "png")
    assert sha == hashlib.sha256(data).hexdigest()
    path = store.path(sha, "png")
    assert path.endswith(f"{sha[:2]}/{sha[2:4]}/{sha}.png")
    assert _files(store) == [path]
    assert await store.get(sha, "png") == data
    assert await store.exists(sha, "png")
    assert not await store.exists(sha, "webp")
    assert await store.size(sha, "png") == len(data)
    assert store.url(sha, "png").endswith(f"/{sha[:2]}/{sha[2:4]}/{sha}.png")
    assert store.url(sha, "png").startswith("file://" if store.is_local else "memory://")


async def test_identical_bytes_are_stored_once(store: FsspecAssetStore) -> None:
    data = _png()
    shas = await asyncio.gather(*(store.put(data, "png") for _ in range(8)))
    assert len(set(shas)) == 1
    assert await store.put(data, "png") == shas[0]
    assert len(_files(store)) == 1  # and no temporary files left behind


async def test_distinct_bytes_get_distinct_blobs(store: FsspecAssetStore) -> None:
    a = await store.put(_png((1, 2, 3, 255)), "png")
    b = await store.put(_png((4, 5, 6, 255)), "png")
    assert a != b
    assert len(_files(store)) == 2


async def test_missing_and_malformed_keys(store: FsspecAssetStore) -> None:
    with pytest.raises(AssetNotFound):
        await store.get("0" * 64, "png")
    with pytest.raises(AssetNotFound):
        await store.size("0" * 64, "png")
    with pytest.raises(InvalidAssetKey, match="sha256"):
        await store.get("../../etc/passwd", "png")
    with pytest.raises(ValueError, match="sha256"):
        await store.get("A" * 64, "png")
    with pytest.raises(InvalidAssetKey, match="ext"):
        await store.put(b"x", "p/ng")
    assert await store.local_path("0" * 64, "png") is None


async def test_jpg_is_an_alias_of_jpeg(store: FsspecAssetStore) -> None:
    sha = await store.put(b"\xff\xd8not-really-a-jpeg", "JPG")
    assert store.path(sha, "jpg") == store.path(sha, "jpeg")
    assert await store.get(sha, ".jpeg") == b"\xff\xd8not-really-a-jpeg"


async def test_byte_ranges(store: FsspecAssetStore) -> None:
    data = bytes(range(256)) * 40
    sha = await store.put(data, "bin")
    assert await store.read_range(sha, "bin", 0, 10) == data[:10]
    assert await store.read_range(sha, "bin", 100, 356) == data[100:356]
    assert await store.read_range(sha, "bin", len(data) - 5) == data[-5:]
    assert await store.read_range(sha, "bin", 50, 50) == b""
    with pytest.raises(ValueError):
        await store.read_range(sha, "bin", 10, 5)
    chunks = [c async for c in store.iter_bytes(sha, "bin", start=7, end=9000, chunk_size=1000)]
    assert b"".join(chunks) == data[7:9000]
    assert max(len(c) for c in chunks) == 1000
    assert b"".join([c async for c in store.iter_bytes(sha, "bin")]) == data
    with pytest.raises(AssetNotFound):
        [c async for c in store.iter_bytes("1" * 64, "bin")]


async def test_local_path_only_on_a_local_store(store: FsspecAssetStore) -> None:
    sha = await store.put(b"abc", "txt")
    path = await store.local_path(sha, "txt")
    if store.is_local:
        assert path is not None and Path(path).read_bytes() == b"abc"
    else:
        assert path is None


# -- atomic writes --------------------------------------------------------------------------------------------


async def test_a_write_that_fails_before_the_rename_leaves_nothing(
    store: FsspecAssetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("simulated crash before the rename")

    if store.is_local:
        monkeypatch.setattr("serve_app.store.filesystem.os.replace", crash)
    else:
        monkeypatch.setattr(store.fs, "mv", crash)
    data = _png()
    with pytest.raises(OSError, match="simulated crash"):
        await store.put(data, "png")
    sha = hashlib.sha256(data).hexdigest()
    assert not await store.exists(sha, "png")
    assert _files(store) == []  # the temporary file was cleaned up too
    monkeypatch.undo()
    assert await store.put(data, "png") == sha
    assert await store.get(sha, "png") == data


async def test_a_write_that_fails_half_way_leaves_nothing(
    store: FsspecAssetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store.is_local:
        real_write = os.write

        def half_then_full_disk(fd: int, data: memoryview) -> int:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("serve_app.store.filesystem.os.write", half_then_full_disk)
    else:
        real_open = store.fs.open

        class HalfWriter:
            def __init__(self, handle: io.BufferedIOBase) -> None:
                self.handle = handle

            def __enter__(self) -> HalfWriter:
                return self

            def __exit__(self, *exc: object) -> None:
                self.handle.close()

            def write(self, data: bytes) -> int:
                self.handle.write(data[: len(data) // 2])
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(store.fs, "open", lambda path, mode="rb", **kw: HalfWriter(real_open(path, mode)))
    with pytest.raises(OSError, match="No space"):
        await store.put(b"x" * 10_000, "bin")
    assert _files(store) == []


# -- derived formats ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["webp", "jpeg"])
async def test_derive_converts_once_and_caches(store: FsspecAssetStore, target: str) -> None:
    data = _png((10, 200, 30, 128), (20, 10))
    sha = await store.put(data, "png")
    first = await store.derive(sha, "png", target)
    assert (first.sha256, first.ext, first.hit) == (sha, target, False)
    again = await store.derive(sha, "png", target)
    assert again.hit and again.size == first.size
    derived = await store.get(sha, target)
    assert len(derived) == first.size == await store.size(sha, target)
    with Image.open(io.BytesIO(derived)) as image:
        assert image.format == target.upper() and image.size == (20, 10)
    assert await store.get(sha, "png") == data  # the source is untouched


async def test_derive_to_the_stored_format_is_a_hit(store: FsspecAssetStore) -> None:
    sha = await store.put(_png(), "png")
    result = await store.derive(sha, "png", "png")
    assert result.hit


async def test_derive_refuses_unknown_formats_and_missing_sources(store: FsspecAssetStore) -> None:
    sha = await store.put(_png(), "png")
    with pytest.raises(UnsupportedFormat, match="gif"):
        await store.derive(sha, "png", "gif")
    with pytest.raises(AssetNotFound):
        await store.derive("2" * 64, "png", "webp")
    with pytest.raises(ValueError, match="quality"):
        await store.derive(sha, "png", "webp", quality=0)


# -- garbage collection ---------------------------------------------------------------------------------------


async def test_collect_keeps_referenced_and_recent_blobs(store: FsspecAssetStore, clock: Clock) -> None:
    referenced_old = await store.put(b"referenced", "bin")
    unreferenced_recent = await store.put(b"recent", "bin")
    unreferenced_old = await store.put(_png(), "png")
    await store.derive(unreferenced_old, "png", "webp")
    for sha, ext in [(referenced_old, "bin"), (unreferenced_old, "png")]:
        _set_age(store, store.path(sha, ext), clock, 7200)
    _set_age(store, store.path(unreferenced_old, "webp", derived=True), clock, 7200)

    dry = await store.collect({referenced_old}, older_than_s=3600, dry_run=True)
    assert len(dry.removed) == 2 and await store.exists(unreferenced_old, "png")

    result = await store.collect({referenced_old}, older_than_s=3600)
    assert sorted(result.removed) == sorted(
        [store.path(unreferenced_old, "png"), store.path(unreferenced_old, "webp", derived=True)]
    )
    assert result.bytes_freed > 0 and result.kept_referenced == 1 and result.kept_recent == 1
    assert await store.exists(referenced_old, "bin")
    assert await store.exists(unreferenced_recent, "bin")
    assert not await store.exists(unreferenced_old, "png")
    assert not await store.exists(unreferenced_old, "webp")


async def test_a_put_of_stored_bytes_makes_the_blob_young_again(store: FsspecAssetStore, clock: Clock) -> None:
    sha = await store.put(b"shared", "bin")
    _set_age(store, store.path(sha, "bin"), clock, 7200)
    # A new job produces the same bytes: until its image row is committed, only the blob's age protects it.
    assert await store.put(b"shared", "bin") == sha
    result = await store.collect(set(), older_than_s=3600)
    assert result.removed == []
    assert await store.exists(sha, "bin")


async def test_collect_removes_stale_temporary_files(store: FsspecAssetStore, clock: Clock) -> None:
    sha = await store.put(b"blob", "bin")
    folder = os.path.dirname(store.path(sha, "bin"))
    stale = f"{folder}/.tmp-{uuid.uuid4().hex}-{sha}.bin"
    fresh = f"{folder}/.tmp-{uuid.uuid4().hex}-{sha}.bin"
    for path in (stale, fresh):
        with store.fs.open(path, "wb") as handle:
            handle.write(b"bl")
    _set_age(store, stale, clock, 7200)
    result = await store.collect({sha}, older_than_s=3600)
    assert result.removed == [stale]
    assert store.fs.exists(fresh)


async def test_collect_finishes_or_undoes_an_interrupted_collection(store: FsspecAssetStore, clock: Clock) -> None:
    wanted = await store.put(b"wanted", "bin")
    unwanted = await store.put(b"unwanted", "bin")
    for sha in (wanted, unwanted):
        final = store.path(sha, "bin")
        trash = f"{os.path.dirname(final)}/.gc-{uuid.uuid4().hex}-{os.path.basename(final)}"
        store.fs.mv(final, trash)
        _set_age(store, trash, clock, 7200)
    await store.collect({wanted}, older_than_s=3600)
    assert await store.get(wanted, "bin") == b"wanted"
    assert not await store.exists(unwanted, "bin")
    assert _files(store) == [store.path(wanted, "bin")]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    blobs=st.lists(
        st.tuples(st.binary(min_size=1, max_size=8), st.integers(0, 10_000), st.booleans()),
        min_size=1,
        max_size=8,
        unique_by=lambda t: t[0],
    ),
    grace=st.integers(1, 10_000),
)
def test_collect_never_removes_a_referenced_or_recent_blob(blobs: list[tuple[bytes, int, bool]], grace: int) -> None:
    clock = Clock()
    store = FsspecAssetStore(f"memory://limner-gc-{uuid.uuid4().hex}", clock=clock)

    async def scenario() -> None:
        referenced: set[str] = set()
        expected_kept: set[str] = set()
        for data, age, is_referenced in blobs:
            sha = await store.put(data, "bin")
            _set_age(store, store.path(sha, "bin"), clock, age)
            if is_referenced:
                referenced.add(sha)
            if is_referenced or age < grace:
                expected_kept.add(sha)
        await store.collect(referenced, older_than_s=grace)
        for data, _, _ in blobs:
            sha = hashlib.sha256(data).hexdigest()
            assert await store.exists(sha, "bin") == (sha in expected_kept)

    try:
        asyncio.run(scenario())
    finally:
        store.fs.rm(store.root, recursive=True)
