"""Optional HMAC signatures on backend callbacks, for backends that can sign.

A backend signs the raw request body with its apiKey and says when:
``X-Taskfleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``.
A signature is accepted within ``TOLERANCE_S`` of taskfleet's clock, so a captured
callback cannot be replayed later; a callback without the header still needs only
the token of its URL.
"""

from __future__ import annotations

import hashlib
import hmac

from app.core.errors import Unauthorized

HEADER = "X-Taskfleet-Signature"
TOLERANCE_S = 300


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
    try:
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError) as exc:
        raise Unauthorized(f"{HEADER} must look like t=<unix seconds>,v1=<hex>") from exc
    if abs(now_s - timestamp) > TOLERANCE_S:
        raise Unauthorized(f"callback signature is more than {TOLERANCE_S}s away from now")
    if not hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={given}"):
        raise Unauthorized("callback signature does not match the body")
