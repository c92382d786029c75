"""Which JWTs are revoked: by their ``jti``, or every token of a ``sub`` issued before a
cutoff. Pure rules over the revocations in force; the database keeps them
(``app.store.revocations_repo``) and each process caches them (``RevocationCache``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Seconds a process keeps the revocations it read before reading them again: a
#: revocation takes effect within this long in every process (at once in the one that
#: recorded it). Five seconds: one small query per process every five seconds.
REFRESH_S = 5.0


@dataclass(frozen=True)
class RevokedToken:
    """One token revoked by its ``jti``; the record can go once ``expires_ms`` is past
    (None: its expiry is unknown, kept until removed)."""

    jti: str
    sub: str | None
    expires_ms: int | None
    revoked_ms: int


@dataclass(frozen=True)
class SubjectCutoff:
    """Every token of ``sub`` issued (``iat``) before ``issued_before_ms`` is revoked."""

    sub: str
    issued_before_ms: int
    updated_ms: int


@dataclass(frozen=True)
class Revocations:
    """The revocations in force: revoked ``jti``s and cutoffs by ``sub``."""

    jtis: frozenset[str] = frozenset()
    cutoffs_ms: dict[str, int] = field(default_factory=dict)

    def reason(self, claims: dict[str, Any]) -> str | None:
        """Why the token of these (already verified) claims is revoked; None if it is not.
        A token without ``iat`` whose ``sub`` has a cutoff counts as issued before it: it
        cannot show otherwise."""
        jti = claims.get("jti")
        if isinstance(jti, str) and jti in self.jtis:
            return "token revoked"
        cutoff_ms = self.cutoffs_ms.get(str(claims.get("sub")))
        if cutoff_ms is None:
            return None
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or iat * 1000 < cutoff_ms:
            return "token revoked: every token of its subject issued before a cutoff is"
        return None


@dataclass
class RevocationCache:
    """A process's copy of the revocations and when it was read (one per Context)."""

    revocations: Revocations | None = None
    read_ms: int = 0

    def fresh(self, now_ms: int) -> Revocations | None:
        """The copy if it was read less than ``REFRESH_S`` ago."""
        if self.revocations is None or not 0 <= now_ms - self.read_ms < REFRESH_S * 1000:
            return None
        return self.revocations

    def stale(self) -> Revocations:
        """The last copy read, however old (empty if none was)."""
        return self.revocations or Revocations()

    def keep(self, revocations: Revocations, now_ms: int) -> None:
        self.revocations, self.read_ms = revocations, now_ms

    def forget(self) -> None:
        """Read again at the next check (after this process recorded a revocation); the
        copy stays the fallback should that read fail."""
        self.read_ms = 0
