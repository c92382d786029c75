"""Which backend URLs taskfleet will call."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from app.core.errors import InvalidInput

#: Cloud metadata services: reachable from many hosts, never a backend, and a classic
#: server-side request forgery target.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "100.100.100.200", "fd00:ec2::254"})


#: A DNS name: labels of letters, digits, '-' and '_' (not at a label's ends), dots
#: between them; internationalised names in their punycode (xn--) form.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP a host names literally, including the decimal, octal and hex IPv4 forms
    that resolvers accept (``2852039166``, ``0251.0376.0251.0376``); None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_forbidden_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Link-local (cloud metadata lives there), multicast and unspecified addresses."""
    return (
        address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or str(address) in METADATA_HOSTS
    )


def check_backend_url(url: str, field: str) -> str:
    """Return ``url`` if taskfleet may call it, else raise ``InvalidInput``. Private and
    loopback addresses are allowed (a GPU fleet lives there); link-local and metadata
    addresses are not, in any spelling. Names are checked again when called
    (``app.backends``), since DNS can point them anywhere."""
    try:
        parts = urlsplit(url)
        scheme, hostname, _ = parts.scheme, parts.hostname, parts.port
    except ValueError:  # an unbalanced IPv6 bracket ("http://[", "http://a]b"), a bad port
        scheme, hostname = "", None
    if scheme not in ("http", "https") or not hostname:
        raise InvalidInput(f"{field} must be an http(s) URL with a host", {field: url})
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidInput(f"{field} must not contain spaces or control characters", {field: url})
    host = hostname.lower().rstrip(".")
    if literal_address(host) is None and not _HOST_NAME.match(host):
        raise InvalidInput(f"{field} has a host that is neither an IP address nor a DNS name", {field: url})
    if host in METADATA_HOSTS:
        raise InvalidInput(f"{field} points at a cloud metadata service", {field: url})
    address = literal_address(host)
    if address is not None and is_forbidden_address(address):
        raise InvalidInput(f"{field} points at a link-local or reserved address", {field: url})
    return url
