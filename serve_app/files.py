"""Local files written so that a reader sees the old file or the whole new one, never a part.

Used by the asset store (local directories) and the Experimance bridge (images and the health file).
"""

from __future__ import annotations

import contextlib
import os
import uuid

__all__ = ["TEMP_PREFIX", "atomic_write"]

TEMP_PREFIX = ".tmp-"
"""Names of writes in progress start with this (hidden; the asset store collects ones a crash left behind)."""


def atomic_write(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    """Writes ``data`` to ``path`` atomically, creating missing parent folders.

    The bytes go to ``.tmp-<uuid>-<name>.tmp`` in the same folder and are then renamed over ``path`` with
    ``os.replace``. The temporary name is hidden and does not end like the final name, so readers that list
    ``*.json`` or ``*.png`` never pick it up. If anything fails, interruptions included, the temporary file
    is removed and ``path`` is left as it was.

    Args:
        path: The file to write.
        data: Its new content.
        fsync: Flush the bytes to disk before the rename, so that after a power cut the name never points at
            a partly written file. Off for files that are rewritten often and worth nothing after a reboot.

    Raises:
        OSError: The file cannot be written (the original error; nothing is left behind).
    """
    target = os.fspath(path)
    folder, name = os.path.split(target)
    folder = folder or os.curdir
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)  # the bytes are on disk before the name says they are
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
