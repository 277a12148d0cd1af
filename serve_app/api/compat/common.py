"""What the compatible APIs share: images as base64 (bare or as a ``data:`` URL) and PNG text chunks.

Pure helpers (no FastAPI, no services): a bad value raises :class:`~pipelines.errors.InputError` naming the field,
which the app's one error table turns into a 422.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib

from pipelines.errors import InputError

__all__ = ["b64", "decode_b64_image", "png_with_text"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def b64(data: bytes) -> str:
    """``data`` as standard base64 text, without a ``data:`` prefix (what A1111 answers)."""
    return base64.b64encode(data).decode("ascii")


def decode_b64_image(value: str, param: str) -> bytes:
    """The bytes of an image sent as base64: bare, or as a ``data:image/...;base64,`` URL.

    Whitespace and missing ``=`` padding are forgiven (browsers and some clients wrap or strip them); the bytes are
    not checked to be an image here (the store decodes them, naming ``param`` if they are not).

    Raises:
        InputError: ``value`` is empty or not base64.
    """
    text = value.strip()
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or ";base64" not in head:
            raise InputError(param, head[:64], "a base64 image or a data:image/...;base64, URL")
    text = "".join(text.split())
    if not text:
        raise InputError(param, value[:64], "a base64-encoded image")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(param, f"<{len(value)} characters>", "a base64-encoded image") from None


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_text(png: bytes, key: str, text: str) -> bytes:
    """``png`` with a text chunk ``key`` = ``text`` inserted after its header, without re-encoding the pixels.

    A ``tEXt`` chunk when ``text`` is Latin-1 (as PIL writes it, and as A1111's readers expect), else an
    uncompressed ``iTXt`` chunk in UTF-8; PIL reads either into ``Image.info[key]``.

    Raises:
        ValueError: ``png`` is not a PNG.
    """
    if not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    (header_len,) = struct.unpack(">I", png[8:12])
    end = 8 + 12 + header_len  # signature, then IHDR: length, type, data, CRC
    keyword = key.encode("latin-1")
    try:
        chunk = _chunk(b"tEXt", keyword + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        chunk = _chunk(b"iTXt", keyword + b"\0\0\0\0\0" + text.encode("utf-8"))
    return png[:end] + chunk + png[end:]
