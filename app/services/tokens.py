"""JWT revocation: revoke one token by its ``jti`` or every token of a subject issued
before a time (admin), list what is revoked, tell whether a request's token is, and
drop the records of revoked tokens that have expired anyway (a maintenance routine).

Every authenticated request is checked against a per-process copy of the revocations
(``Context.revocations``) read again from the database at most every
``app.core.tokens.REFRESH_S`` seconds, so a revocation takes effect everywhere within
that time, and at once in the process that recorded it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.core.errors import StoreUnavailable
from app.core.tokens import RevokedToken, SubjectCutoff
from app.services.context import Context
from app.store import revocations_repo

log = logging.getLogger("taskfleet.tokens")


@dataclass(frozen=True)
class RevocationList:
    tokens: list[RevokedToken]
    subjects: list[SubjectCutoff]


def revoke_token(
    ctx: Context, jti: str, sub: str | None = None, expires_ms: int | None = None
) -> RevokedToken:
    """Revoke the token whose ``jti`` this is. ``expires_ms`` (the token's ``exp``) lets
    the record be dropped once the token has expired; without it the record stays."""
    with ctx.db.session() as session:
        revoked = revocations_repo.revoke_token(session, jti, sub, expires_ms, ctx.now_ms())
    ctx.revocations.forget()
    log.info("token revoked: jti=%s sub=%s", jti, sub)
    return revoked


def revoke_subject(ctx: Context, sub: str, issued_before_ms: int | None = None) -> SubjectCutoff:
    """Revoke every token of ``sub`` issued before ``issued_before_ms`` (default: now)."""
    now_ms = ctx.now_ms()
    with ctx.db.session() as session:
        cutoff = revocations_repo.cut_off(
            session, sub, now_ms if issued_before_ms is None else issued_before_ms, now_ms
        )
    ctx.revocations.forget()
    log.info("tokens of %s issued before %s revoked", sub, cutoff.issued_before_ms)
    return cutoff


def revocations(ctx: Context) -> RevocationList:
    with ctx.db.session() as session:
        return RevocationList(revocations_repo.list_tokens(session), revocations_repo.list_cutoffs(session))


def revoked_reason(ctx: Context, claims: dict[str, Any]) -> str | None:
    """Why the token of these verified claims is revoked (None: it is not). When the
    database cannot be read, the last copy read stays in force."""
    now_ms = ctx.now_ms()
    cache = ctx.revocations
    current = cache.fresh(now_ms)
    if current is None:
        try:
            with ctx.db.session() as session:
                # A token expired less than the leeway ago is still accepted: keep its jti.
                current = revocations_repo.in_force(session, now_ms - ctx.settings.clock_leeway_s * 1000)
        except StoreUnavailable as exc:
            log.warning("revocations not re-read (%s): the last copy stays in force", exc)
            current = cache.stale()
        cache.keep(current, now_ms)
    return current.reason(claims)


def drop_expired(ctx: Context) -> int:
    """The routine: forget revoked tokens that expired (past the leeway) and would be
    refused as expired anyway."""
    with ctx.db.session() as session:
        return revocations_repo.drop_expired(session, ctx.now_ms() - ctx.settings.clock_leeway_s * 1000)
