"""Which backend URLs taskfleet will call."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from app.core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Names of cloud metadata services (GCP; AWS's instance-data): reachable from many
#: hosts, never a backend, and a classic server-side request forgery target.
METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}
)
#: Metadata and host-agent addresses outside the link-local ranges (169.254.0.0/16 and
#: fe80::/10, refused as a whole): AWS's IPv6 IMDS, Alibaba's, Azure's WireServer
#: (which hands out VM agent configuration), Oracle Cloud's legacy one.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192")
)
#: IPv6 prefixes that carry an IPv4 address in their last 32 bits, which the network
#: may route to that IPv4 host: NAT64's well-known and local-use prefixes (RFC 6052,
#: 8215) and SIIT's IPv4-translated form (RFC 2765). The IPv4-mapped (::ffff:0:0/96) and
#: IPv4-compatible (::/96) forms, 6to4 and Teredo are handled by ``embedded_ipv4``.
_LAST_32_BITS = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96"))

#: A DNS name: labels of letters, digits, '-' and '_' (not at a label's ends), dots
#: between them; internationalised names in their punycode (xn--) form.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def literal_address(host: str) -> IPAddress | None:
    """The IP a host names literally, including the decimal, octal and hex IPv4 forms
    that resolvers accept (``2852039166``, ``0251.0376.0251.0376``); None for a name.
    An IPv4-mapped IPv6 address is its IPv4 address."""
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


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address may lead to: IPv4-mapped and -compatible
    (``::a.b.c.d``), NAT64 and SIIT (``64:ff9b::a.b.c.d``), 6to4 and both ends of Teredo."""
    found = []
    value = int(address)
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    compatible = value >> 32 == 0 and value > 0xFFFF  # not :: or ::1
    if compatible or any(address in network for network in _LAST_32_BITS):
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def _forbidden_itself(address: IPAddress) -> bool:
    return (
        address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address in METADATA_ADDRESSES
    )


def is_forbidden_address(address: IPAddress) -> bool:
    """Link-local (cloud metadata lives there), multicast, unspecified and metadata
    addresses, also as the IPv4 address inside an IPv6 one (NAT64, IPv4-compatible...)."""
    if _forbidden_itself(address):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        return any(_forbidden_itself(inner) for inner in embedded_ipv4(address))
    return False


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
    if host in METADATA_NAMES:
        raise InvalidInput(f"{field} points at a cloud metadata service", {field: url})
    address = literal_address(host)
    if address is not None and is_forbidden_address(address):
        raise InvalidInput(f"{field} points at a link-local or reserved address", {field: url})
    return url
