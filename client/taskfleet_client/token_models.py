"""JWT revocations (``/api/tokens``, admin)."""

from __future__ import annotations

from taskfleet_client.models import ApiObject, many, maybe_text, nested, text, time


class RevokedToken(ApiObject):
    """One token revoked by its ``jti``."""

    __slots__ = ()

    jti = text("jti")
    #: Its subject, if given when it was revoked.
    sub = maybe_text("sub")
    #: Its ``exp``: the record is dropped after it (None: unknown, kept).
    expires_at = time("expiresAt")
    revoked_at = time("revokedAt")


class SubjectCutoff(ApiObject):
    """Every token of ``sub`` issued before ``issued_before`` is revoked."""

    __slots__ = ()

    sub = text("sub")
    issued_before = time("issuedBefore")
    updated_at = time("updatedAt")


class Revocation(ApiObject):
    """The revocation just recorded: ``token`` or ``subject`` (the other is None)."""

    __slots__ = ()

    token = nested("token", RevokedToken)
    subject = nested("subject", SubjectCutoff)


class Revocations(ApiObject):
    """Every token revoked by ``jti`` and every subject cutoff."""

    __slots__ = ()

    tokens = many("tokens", RevokedToken)
    subjects = many("subjects", SubjectCutoff)
