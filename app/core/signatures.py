"""Optional HMAC signatures on backend callbacks, for backends that can sign.

A backend signs the raw request body with its apiKey and says when:
``X-Taskfleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``.
A signature is accepted within ``TOLERANCE_S`` of taskfleet's clock, so a captured
callback cannot be replayed later. A server's callbacks either must carry a signature
(``REQUIRED``) or may (``OPTIONAL``): then a callback without the header needs only the
token of its URL, and one with the header must still match.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from app.core.errors import Unauthorized

HEADER = "X-Taskfleet-Signature"
TOLERANCE_S = 300

#: A server's (or the deployment's) demand: every callback signed, or signatures checked
#: only when present (the original protocol).
REQUIRED = "required"
OPTIONAL = "optional"
MODES = (REQUIRED, OPTIONAL)

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def is_required(server_mode: str | None, default_mode: str, has_api_key: bool) -> bool:
    """Whether a server's callbacks must be signed: its own ``server_mode`` when set,
    else the deployment's ``default_mode`` for servers that have an apiKey to sign with
    (a server without one can only use the URL token)."""
    if server_mode is not None:
        return server_mode == REQUIRED
    return default_mode == REQUIRED and has_api_key


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp`` (what a backend computes)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(header: str, secret: str | None, body: bytes, now_s: int) -> None:
    """Raise ``Unauthorized`` unless ``header`` signs ``body`` with ``secret`` within
    ``TOLERANCE_S`` of ``now_s``."""
    if not secret:
        raise Unauthorized("signed callback from a server without an apiKey to check it with")
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    given_t, given = parts.get("t", ""), parts.get("v1", "")
    # fullmatch with ASCII classes: no Unicode digits for int(), nothing non-ASCII for
    # compare_digest (which raises TypeError on it).
    if not (_TIMESTAMP.fullmatch(given_t) and _DIGEST.fullmatch(given)):
        raise Unauthorized(f"{HEADER} must look like t=<unix seconds>,v1=<64 lowercase hex digits>")
    timestamp = int(given_t)
    if abs(now_s - timestamp) > TOLERANCE_S:
        raise Unauthorized(f"callback signature is more than {TOLERANCE_S}s away from now")
    expected = sign(secret, timestamp, body).encode()
    if not hmac.compare_digest(expected, f"t={timestamp},v1={given}".encode()):
        raise Unauthorized("callback signature does not match the body")
