"""Which backend URLs taskfleet will call."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from app.core.errors import InvalidInput

#: Cloud metadata services: reachable from many hosts, never a backend, and a classic
#: server-side request forgery target.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "100.100.100.200", "fd00:ec2::254"})


def check_backend_url(url: str, field: str) -> str:
    """Return ``url`` if taskfleet may call it, else raise ``InvalidInput``. Private and
    loopback addresses are allowed (a GPU fleet lives there); link-local and metadata
    addresses are not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{field} must be an http(s) URL with a host", {field: url})
    host = parts.hostname.lower()
    if host in METADATA_HOSTS:
        raise InvalidInput(f"{field} points at a cloud metadata service", {field: url})
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        raise InvalidInput(f"{field} points at a link-local or reserved address", {field: url})
    return url
