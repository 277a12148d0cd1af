"""Standard Webhooks signatures (standardwebhooks.com): ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed by the secret's bytes. A secret
is written ``whsec_<base64>`` (the prefix optional), as the spec's libraries read it.

Each tenant's deliveries are signed with a secret of its own, derived from the service's
(``LIMNER_WEBHOOK_SECRET``): ``HMAC-SHA256(service key, "limner-webhook-tenant:" + tenant)``, written ``whsec_...``
(:func:`tenant_secret`). A receiver of one tenant cannot forge another's deliveries, nothing more is stored, and
``python -m serve_app.cli keys webhook-secret --tenant T`` prints it again. Jobs of the open tenant ``""`` (auth
off) are signed with the service's secret itself."""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["secret_bytes", "sign", "signature_headers", "tenant_secret"]


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret.

    Raises:
        ValueError: Not base64 after the prefix, or shorter than 24 bytes.
    """
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    if len(key) < 24:
        raise ValueError("a webhook secret needs at least 24 random bytes (whsec_ + base64)")
    return key


def tenant_secret(service_secret: str, tenant: str) -> str:
    """The ``whsec_...`` secret ``tenant``'s deliveries are signed with (the service's own for the open tenant)."""
    if not tenant:
        return service_secret
    derived = hmac.new(secret_bytes(service_secret), f"limner-webhook-tenant:{tenant}".encode(), hashlib.sha256)
    return "whsec_" + base64.b64encode(derived.digest()).decode()


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
