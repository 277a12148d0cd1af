"""Which webhook URLs limner calls: ``http(s)`` only, and never an address inside the deployment (loopback,
private, link-local (which holds the cloud metadata service, 169.254.169.254), carrier-grade NAT, multicast,
reserved, unspecified) unless the config allows that host. The host is resolved when the job is accepted and
again before each delivery (a name can be re-pointed in between); every address it resolves to must pass."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from serve_app.errors import InvalidRequest

__all__ = ["check_target", "forbidden_address"]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def forbidden_address(address: str) -> bool:
    """Whether ``address`` is one a webhook must not reach by default."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT)
    )


async def check_target(url: str, *, allowed_hosts: Collection[str] = (), param: str = "webhook_url") -> str:
    """``url`` if limner may POST to it.

    Args:
        url: The webhook URL.
        allowed_hosts: Hosts (names or addresses, as written in the URL) let through whatever they resolve to:
            the config's ``webhooks.allow_hosts`` (tests allow ``127.0.0.1``).
        param: The field named in the error.

    Raises:
        InvalidRequest: Not an absolute http(s) URL, a host that does not resolve, or one that resolves to a
            forbidden address (422 naming ``param``).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{param}={url!r} is not allowed: an absolute http or https URL", param=param)
    if parts.username or parts.password:
        raise InvalidRequest(f"{param} is not allowed: a URL without credentials in it", param=param)
    host = parts.hostname
    if host in allowed_hosts:
        return url
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidRequest(f"{param}={url!r} is not allowed: a valid port", param=param) from None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidRequest(f"{param}: the host {host!r} does not resolve", param=param) from None
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if forbidden_address(address):
            raise InvalidRequest(
                f"{param}: {host!r} resolves to {address}, an address inside the network (loopback, private, "
                "link-local or reserved): not called unless webhooks.allow_hosts names it",
                param=param,
            )
    return url
