"""Whether keys are required: ``auth.mode`` against the address the HTTP proxy listens on.

``auto`` (the default) is ``off`` when the proxy listens on a loopback address only (``make serve`` on
127.0.0.1: a laptop, where the only client is its owner) and ``keys`` otherwise. ``off`` on any other address is
refused at start unless ``auth.allow_off_on_network`` says so: a misconfigured cluster must not serve everyone.
"""

from __future__ import annotations

import ipaddress
import logging

from serve_app.config import AuthConfig

__all__ = ["AuthRefused", "is_loopback", "proxy_host", "resolve_mode"]

logger = logging.getLogger("ray.serve.limner.auth")


class AuthRefused(RuntimeError):
    """The config asks for auth off on a non-loopback address without allowing it."""


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback address or ``localhost`` (None, ``0.0.0.0``, ``::`` and names are not)."""
    if host is None:
        return False
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def proxy_host() -> str | None:
    """The host Ray Serve's HTTP proxy listens on (``http_options.host``), or None when it cannot be read (not in
    a Serve cluster, or Serve's client API changed): callers treat None as "not loopback", the safe side."""
    try:
        from ray.serve.context import _get_global_client

        client = _get_global_client(raise_if_no_controller_running=False)
        return None if client is None else client.http_config.host
    except Exception as exc:  # a private API: never let its change stop the service; keys are the fallback
        logger.warning("could not read Serve's HTTP host (%s); treating it as reachable from the network", exc)
        return None


def resolve_mode(config: AuthConfig, host: str | None) -> bool:
    """Whether keys are required on a proxy listening on ``host``, logging the decision.

    Raises:
        AuthRefused: ``mode: off`` on a non-loopback ``host`` without ``allow_off_on_network``.
    """
    loopback = is_loopback(host)
    where = host or "an unknown address"
    if config.mode == "keys":
        logger.info("auth: API keys required (auth.mode: keys)")
        return True
    if config.mode == "off":
        if not loopback and not config.allow_off_on_network:
            raise AuthRefused(
                f"auth.mode is off but the HTTP proxy listens on {where}, beyond loopback: set auth.mode to keys, "
                "or auth.allow_off_on_network: true to serve everyone without keys"
            )
        logger.warning("auth: OFF on %s (auth.mode: off): anyone who can reach the port may use every route", where)
        return False
    if loopback:
        logger.warning("auth: off, the HTTP proxy listens on %s (loopback) only; auth.mode: keys requires keys", where)
        return False
    logger.info("auth: API keys required: the HTTP proxy listens on %s, beyond loopback (auth.mode: auto)", where)
    return True
