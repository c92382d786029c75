"""Durable JWT revocations: the ``revoked_tokens`` and ``token_cutoffs`` rows, read and
written as ``RevokedToken`` and ``SubjectCutoff`` (the ORM rows never leave this module)."""

from __future__ import annotations

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.core.clock import datetime_to_ms, ms_to_datetime
from app.core.tokens import Revocations, RevokedToken, SubjectCutoff
from app.store.models import RevokedTokenRow, TokenCutoffRow


def _token(row: RevokedTokenRow) -> RevokedToken:
    return RevokedToken(
        jti=row.jti,
        sub=row.sub,
        expires_ms=datetime_to_ms(row.expires_at),
        revoked_ms=datetime_to_ms(row.revoked_at) or 0,
    )


def _cutoff(row: TokenCutoffRow) -> SubjectCutoff:
    return SubjectCutoff(
        sub=row.sub,
        issued_before_ms=datetime_to_ms(row.issued_before) or 0,
        updated_ms=datetime_to_ms(row.updated_at) or 0,
    )


def revoke_token(
    session: Session, jti: str, sub: str | None, expires_ms: int | None, now_ms: int
) -> RevokedToken:
    """Record ``jti`` as revoked. Revoking it again keeps the first time and fills in a
    subject or expiry the first one did not know."""
    row = session.get(RevokedTokenRow, jti)
    if row is None:
        row = RevokedTokenRow(jti=jti, revoked_at=ms_to_datetime(now_ms))
        session.add(row)
    if sub is not None:
        row.sub = sub
    if expires_ms is not None:
        row.expires_at = ms_to_datetime(expires_ms)
    session.flush()
    return _token(row)


def cut_off(session: Session, sub: str, issued_before_ms: int, now_ms: int) -> SubjectCutoff:
    """Revoke every token of ``sub`` issued before ``issued_before_ms``. A cutoff only
    moves forward: an earlier one than in force changes nothing (it is not a way to
    restore tokens)."""
    row = session.get(TokenCutoffRow, sub, with_for_update=True)
    if row is None:
        row = TokenCutoffRow(sub=sub, issued_before=ms_to_datetime(issued_before_ms))
        session.add(row)
    elif (datetime_to_ms(row.issued_before) or 0) < issued_before_ms:
        row.issued_before = ms_to_datetime(issued_before_ms)
    row.updated_at = ms_to_datetime(now_ms)
    session.flush()
    return _cutoff(row)


def list_tokens(session: Session) -> list[RevokedToken]:
    rows = session.scalars(select(RevokedTokenRow).order_by(RevokedTokenRow.revoked_at, RevokedTokenRow.jti))
    return [_token(row) for row in rows]


def list_cutoffs(session: Session) -> list[SubjectCutoff]:
    return [_cutoff(row) for row in session.scalars(select(TokenCutoffRow).order_by(TokenCutoffRow.sub))]


def in_force(session: Session, now_ms: int) -> Revocations:
    """The revocations a check needs: ``jti``s of tokens not yet expired (or of unknown
    expiry) and every cutoff."""
    jtis = session.scalars(
        select(RevokedTokenRow.jti).where(
            or_(RevokedTokenRow.expires_at.is_(None), RevokedTokenRow.expires_at >= ms_to_datetime(now_ms))
        )
    )
    cutoffs = {cutoff.sub: cutoff.issued_before_ms for cutoff in list_cutoffs(session)}
    return Revocations(jtis=frozenset(jtis), cutoffs_ms=cutoffs)


def drop_expired(session: Session, before_ms: int) -> int:
    """Remove the records of revoked tokens that expired before ``before_ms``: such a
    token is refused as expired anyway. How many went."""
    result = session.execute(
        delete(RevokedTokenRow).where(RevokedTokenRow.expires_at < ms_to_datetime(before_ms))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
