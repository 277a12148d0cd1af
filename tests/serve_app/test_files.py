"""serve_app/files.py: atomic_write leaves the old file or the whole new one, and never a temporary file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from serve_app.files import TEMP_PREFIX, atomic_write


def test_writes_the_bytes_and_creates_missing_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "blob.png"
    atomic_write(target, b"new bytes")
    assert target.read_bytes() == b"new bytes"
    assert os.listdir(target.parent) == ["blob.png"]


def test_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "health.json"
    target.write_bytes(b"x" * 10_000)
    atomic_write(str(target), b"short")
    assert target.read_bytes() == b"short"
    assert os.listdir(tmp_path) == ["health.json"]


def test_a_relative_path_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    atomic_write("plain.txt", b"here")
    assert (tmp_path / "plain.txt").read_bytes() == b"here"


def test_the_temporary_name_is_hidden_and_does_not_end_like_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write(tmp_path / "image_server.json", b"{}")
    (name,) = seen
    assert name.startswith(TEMP_PREFIX) and name.startswith(".")
    assert name.endswith(".tmp") and not name.endswith(".json")


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_happens_before_the_rename_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync_spy(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace_spy(src: str, dst: str) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync_spy)
    monkeypatch.setattr(os, "replace", replace_spy)
    atomic_write(tmp_path / "f", b"data", fsync=fsync)
    assert events == (["fsync", "replace"] if fsync else ["replace"])


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "blob"
    target.write_bytes(b"old")

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["blob"]


def test_a_full_disk_half_way_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "blob"
    target.write_bytes(b"old")
    real_write = os.write

    def half_then_full(fd: int, data: memoryview) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"n" * 100_000)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["blob"]


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write

    def at_most_7(fd: int, data: memoryview) -> int:
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", at_most_7)
    payload = bytes(range(256)) * 4
    atomic_write(tmp_path / "blob", payload)
    assert (tmp_path / "blob").read_bytes() == payload


def test_an_interruption_is_cleaned_up_and_re_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "blob", b"data")
    assert os.listdir(tmp_path) == []


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "latest.jpg"
    versions = [bytes([value]) * 300_000 for value in (1, 2)]
    atomic_write(target, versions[0], fsync=False)
    stop = threading.Event()
    torn: list[int] = []
    reads = 0

    def read() -> None:
        nonlocal reads
        while not stop.is_set():
            data = target.read_bytes()
            reads += 1
            if data not in versions:
                torn.append(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for round_ in range(200):
            atomic_write(target, versions[round_ % 2], fsync=False)
    finally:
        stop.set()
        reader.join(timeout=10)
    assert reads > 0
    assert torn == []
    assert os.listdir(tmp_path) == ["latest.jpg"]
