"""Standard Webhooks signatures (standardwebhooks.com): ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed by the secret's bytes. A secret
is written ``whsec_<base64>`` (the prefix optional), as the spec's libraries read it."""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["secret_bytes", "sign", "signature_headers"]


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret.

    Raises:
        ValueError: Not base64 after the prefix, or shorter than 24 bytes.
    """
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    if len(key) < 24:
        raise ValueError("a webhook secret needs at least 24 random bytes (whsec_ + base64)")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of one message."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a signed delivery (and its content type)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }
