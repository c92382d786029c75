"""Limits as rows: two admins creating the same limit at once."""

from __future__ import annotations

import threading

from app.core.limits import LimitConfig
from app.store import limits_repo

NOW = 1_800_000_000_000


def test_two_admins_creating_one_limit_at_once_both_succeed_and_the_later_one_stands(pg_db):
    first_inserted = threading.Event()
    answers: list[object] = []

    def second_admin() -> None:
        first_inserted.wait(10)
        try:
            with pg_db.session() as session:
                # Its read finds no row; its insert waits on the first one's, then fails.
                answers.append(limits_repo.put(session, "race", LimitConfig(max_concurrent=7), NOW + 1))
        except Exception as exc:  # the failure this test exists for
            answers.append(exc)

    with pg_db.session() as session:
        limits_repo.put(session, "race", LimitConfig(max_concurrent=3), NOW)
        thread = threading.Thread(target=second_admin)
        thread.start()
        first_inserted.set()
        thread.join(0.5)  # blocked on the uncommitted row until this commits
    thread.join(10)

    assert len(answers) == 1 and not isinstance(answers[0], Exception), answers
    with pg_db.session() as session:
        stored = limits_repo.get(session, "race")
    assert stored is not None and stored.config.max_concurrent == 7
