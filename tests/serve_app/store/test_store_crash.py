"""A process killed mid-write leaves no blob under its final name, and collection is race-free (local)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from serve_app.store import FsspecAssetStore

_CHILD = textwrap.dedent(
    """
    import asyncio, os, sys, time
    import serve_app.store.filesystem as fs_module

    def stall(src, dst):
        # The temporary file is complete and fsynced; die before it gets its final name.
        print("written", flush=True)
        time.sleep(60)

    fs_module.os.replace = stall
    store = fs_module.FsspecAssetStore(sys.argv[1])
    asyncio.run(store.put(b"x" * 1_000_000, "bin"))
    """
)


def test_sigkill_mid_write_leaves_no_final_name(tmp_path: Path) -> None:
    root = tmp_path / "assets"
    repo = Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root)],
        stdout=subprocess.PIPE,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"written"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    sha = hashlib.sha256(b"x" * 1_000_000).hexdigest()
    store = FsspecAssetStore(str(root))
    final = Path(store.path(sha, "bin"))
    leftovers = [p for p in root.rglob("*") if p.is_file()]
    assert not final.exists()
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-")


async def test_after_a_crash_the_blob_can_be_written_and_the_leftover_collected(tmp_path: Path) -> None:
    now = [0.0]
    store = FsspecAssetStore(str(tmp_path / "assets"), clock=lambda: now[0])
    data = b"y" * 1000
    sha = hashlib.sha256(data).hexdigest()
    final = Path(store.path(sha, "bin"))
    final.parent.mkdir(parents=True)
    leftover = final.parent / f".tmp-dead-{final.name}"
    leftover.write_bytes(data[:500])  # what a killed writer leaves

    assert not await store.exists(sha, "bin")
    assert await store.put(data, "bin") == sha
    assert final.read_bytes() == data

    now[0] = leftover.stat().st_mtime + 10
    assert (await store.collect({sha}, older_than_s=3600)).removed == []  # the leftover is still young
    now[0] += 3600
    result = await store.collect({sha}, older_than_s=3600)
    assert result.removed == [str(leftover)]
    assert final.read_bytes() == data


async def test_a_put_racing_collection_keeps_its_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A put refreshes an old unreferenced blob just as collection renames it aside: the blob survives."""
    store = FsspecAssetStore(str(tmp_path / "assets"))
    sha = await store.put(b"popular", "bin")
    path = store.path(sha, "bin")
    old = os.stat(path).st_mtime - 7200
    os.utime(path, (old, old))

    real_rename = os.rename

    def put_lands_first(src: str, dst: str) -> None:
        if src == path:
            os.utime(path)  # what FsspecAssetStore.put does for bytes already stored
        real_rename(src, dst)

    monkeypatch.setattr("serve_app.store.filesystem.os.rename", put_lands_first)
    result = await store.collect(set(), older_than_s=3600)
    assert result.removed == []
    assert await store.get(sha, "bin") == b"popular"
    assert [p.name for p in Path(store.root).rglob("*") if p.is_file()] == [f"{sha}.bin"]
