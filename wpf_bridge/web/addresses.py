"""Who a webhook request comes from, as the wrong-key limit counts it."""

from __future__ import annotations

import ipaddress


def client_key(address: str | None) -> str:
    """The address the wrong-key limit counts: an IPv4 address, or an IPv6 /64 (a single host
    usually holds a whole /64, so counting single IPv6 addresses would let it guess without end)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def looks_proxied(address: str | None, forwarded_for: str | None) -> bool:
    """A request from a loopback or private address that carries ``X-Forwarded-For``: most likely
    a reverse proxy on the same host or network, whose own address every client would share."""
    if not forwarded_for:
        return False
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private
