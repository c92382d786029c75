"""JWT revocation (admin): revoke one token or a subject's tokens; list what is revoked."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.api.auth import requires
from app.api.token_schemas import RevocationList, RevocationOut, RevokeIn
from app.core.clock import datetime_to_ms, ms_to_datetime
from app.core.tokens import RevokedToken, SubjectCutoff
from app.extensions import current_context as ctx
from app.services import tokens

bp = APIBlueprint("tokens", __name__, url_prefix="/api/tokens", tag="Tokens")
BEARER = {"security": "BearerAuth"}


def _token(revoked: RevokedToken) -> dict[str, Any]:
    return {
        "jti": revoked.jti,
        "sub": revoked.sub,
        "expires_at": ms_to_datetime(revoked.expires_ms),
        "revoked_at": ms_to_datetime(revoked.revoked_ms),
    }


def _subject(cutoff: SubjectCutoff) -> dict[str, Any]:
    return {
        "sub": cutoff.sub,
        "issued_before": ms_to_datetime(cutoff.issued_before_ms),
        "updated_at": ms_to_datetime(cutoff.updated_ms),
    }


@bp.post("/revoke")
@requires("admin")
@bp.input(RevokeIn, arg_name="data")
@bp.output(RevocationOut)
@bp.doc(
    description="Revoke one token by its jti, or every token of a subject issued before a "
    "time (default now). A revoked token gets 401 on every request, within 5 seconds in "
    "every API process (at once in the one that answered this).",
    responses={422: "Neither jti nor sub, or fields that do not go together"},
    **BEARER,
)
def revoke(data: dict[str, Any]) -> Any:
    if "jti" in data:
        revoked = tokens.revoke_token(
            ctx(), data["jti"], data.get("sub"), datetime_to_ms(data.get("expires_at"))
        )
        return {"token": _token(revoked), "subject": None}
    cutoff = tokens.revoke_subject(ctx(), data["sub"], datetime_to_ms(data.get("issued_before")))
    return {"token": None, "subject": _subject(cutoff)}


@bp.get("/revocations")
@requires("admin")
@bp.output(RevocationList)
@bp.doc(description="Every token revoked by jti (until it expires) and every subject cutoff.", **BEARER)
def list_revocations() -> Any:
    found = tokens.revocations(ctx())
    return {"tokens": [_token(t) for t in found.tokens], "subjects": [_subject(c) for c in found.subjects]}
