"""Which tokens the revocations in force refuse, and when a process reads them again."""

from app.core.tokens import REFRESH_S, RevocationCache, Revocations

REVOKED = Revocations(jtis=frozenset({"leaked"}), cutoffs_ms={"alice": 1_000_000})


def test_a_revoked_jti_is_refused_whoever_it_belongs_to():
    assert REVOKED.reason({"jti": "leaked", "sub": "bob", "iat": 5_000}) == "token revoked"
    assert REVOKED.reason({"jti": "other", "sub": "bob", "iat": 5}) is None


def test_a_subjects_tokens_issued_before_its_cutoff_are_refused():
    assert REVOKED.reason({"jti": "a", "sub": "alice", "iat": 999}) is not None  # 999 s < 1,000,000 ms
    assert REVOKED.reason({"jti": "a", "sub": "alice", "iat": 1_000}) is None
    assert REVOKED.reason({"jti": "a", "sub": "alice"}) is not None  # no iat: cannot show it is newer
    assert REVOKED.reason({"jti": "a", "sub": "alice", "iat": "1000"}) is not None


def test_the_cache_is_read_again_after_the_refresh_interval_or_when_told():
    cache = RevocationCache()
    assert cache.fresh(10_000) is None and cache.stale() == Revocations()
    cache.keep(REVOKED, 10_000)
    assert cache.fresh(10_000 + REFRESH_S * 1000 - 1) is REVOKED
    assert cache.fresh(10_000 + REFRESH_S * 1000) is None
    assert cache.fresh(9_999) is None  # the clock went back: read again
    cache.forget()
    assert cache.fresh(10_001) is None and cache.stale() is REVOKED
