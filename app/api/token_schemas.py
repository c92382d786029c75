"""Schemas of JWT revocation (``/api/tokens``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apiflask import Schema
from apiflask.fields import AwareDateTime, List, Nested, String
from apiflask.validators import Length
from marshmallow import ValidationError, validates_schema

from app.api.schemas import StrictSchema

#: Characters a ``jti`` or ``sub`` has at most (the columns' size).
CLAIM_MAX = 255
#: Times before this are refused: no token was issued before the epoch.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _after_epoch(value: datetime) -> None:
    if value < EPOCH:
        raise ValidationError("must be after 1970-01-01T00:00:00Z")


class RevokeIn(StrictSchema):
    """Either ``jti`` (one token; ``sub`` and ``expiresAt`` optional), or ``sub`` alone
    (every token of that subject issued before ``issuedBefore``, default now)."""

    jti = String(
        validate=Length(min=1, max=CLAIM_MAX),
        metadata={"description": "The jti claim of the one token to revoke."},
    )
    sub = String(
        validate=Length(min=1, max=CLAIM_MAX),
        metadata={
            "description": "With jti: the token's subject, recorded for the list. Alone: revoke "
            "every token of this subject issued (iat) before issuedBefore."
        },
    )
    expires_at = AwareDateTime(
        data_key="expiresAt",
        format="iso",
        validate=_after_epoch,
        metadata={
            "description": "With jti: the token's exp, after which the record is dropped (the "
            "token is refused as expired anyway). Without it the record is kept."
        },
    )
    issued_before = AwareDateTime(
        data_key="issuedBefore",
        format="iso",
        validate=_after_epoch,
        metadata={
            "description": "With sub alone: tokens issued before this time are revoked (default: "
            "now; to the second, as iat counts). A cutoff only moves forward."
        },
    )

    @validates_schema
    def _one_kind(self, data: dict[str, Any], **_: Any) -> None:
        if "jti" in data:
            if "issued_before" in data:
                raise ValidationError("issuedBefore goes with sub alone, not with jti", "issuedBefore")
        elif "sub" not in data:
            raise ValidationError("give jti (one token) or sub (every token of a subject)", "_schema")
        elif "expires_at" in data:
            raise ValidationError("expiresAt goes with jti", "expiresAt")


class RevokedTokenOut(Schema):
    jti = String(required=True)
    sub = String(allow_none=True, metadata={"description": "null: not given when it was revoked."})
    expires_at = AwareDateTime(
        data_key="expiresAt",
        allow_none=True,
        metadata={"description": "The token's exp (null: unknown, the record is kept)."},
    )
    revoked_at = AwareDateTime(data_key="revokedAt", required=True)


class SubjectCutoffOut(Schema):
    sub = String(required=True)
    issued_before = AwareDateTime(
        data_key="issuedBefore",
        required=True,
        metadata={"description": "Tokens of sub issued (iat) before this are revoked."},
    )
    updated_at = AwareDateTime(data_key="updatedAt", required=True)


class RevocationOut(Schema):
    """One of ``token`` and ``subject``: the revocation just recorded (the other is null)."""

    token = Nested(RevokedTokenOut, allow_none=True)
    subject = Nested(SubjectCutoffOut, allow_none=True)


class RevocationList(Schema):
    tokens = List(Nested(RevokedTokenOut), required=True, metadata={"description": "Revoked by jti."})
    subjects = List(Nested(SubjectCutoffOut), required=True, metadata={"description": "Cutoffs by subject."})
