"""The database follows the hot state and never moves backwards (SQLite and Postgres)."""

import pytest

from app.core.states import TaskStatus
from app.core.task import TaskSpec, TaskState
from app.store import tasks_repo


def state(version: int, status: TaskStatus, **kw) -> TaskState:
    return TaskState(
        id="t1",
        owner="alice",
        spec=TaskSpec(type="echo"),
        status=status,
        version=version,
        created_ms=1_000,
        updated_ms=1_000 + version,
        **kw,
    )


def test_an_older_version_never_overwrites_a_newer_row(db):
    tasks_repo.insert_task(db, state(1, TaskStatus.PENDING), None)
    assert tasks_repo.follow(
        db, state(3, TaskStatus.COMPLETED, attempt=1, result={"ok": 1}), TaskStatus.PROCESSING
    ).written
    assert not tasks_repo.follow(
        db, state(2, TaskStatus.PROCESSING, attempt=1, server_id="s"), TaskStatus.PENDING
    ).written
    with db.session() as s:
        row = tasks_repo.get_row(s, "t1")
        assert (row.status, row.version, row.result) == ("COMPLETED", 3, {"ok": 1})
        transitions = [(t.version, t.to_status) for t in tasks_repo.transitions_of(s, "t1")]
        assert transitions == [(1, "PENDING"), (2, "PROCESSING"), (3, "COMPLETED")]


def test_following_the_same_version_twice_records_it_once(db):
    tasks_repo.insert_task(db, state(1, TaskStatus.PENDING), None)
    for _ in range(2):
        tasks_repo.follow(db, state(2, TaskStatus.PROCESSING, attempt=1, server_id="s"), TaskStatus.PENDING)
    with db.session() as s:
        assert len(tasks_repo.transitions_of(s, "t1")) == 2
        assert len(tasks_repo.attempts_of(s, "t1")) == 1


def test_cursor_pagination_walks_every_task_once_newest_first(db):
    for i in range(7):
        st = TaskState(
            id=f"t{i}",
            owner="alice",
            spec=TaskSpec(type="echo"),
            status=TaskStatus.PENDING,
            version=1,
            created_ms=1_000 + i // 2,
            updated_ms=1_000,
        )
        tasks_repo.insert_task(db, st, None)
    tasks_repo.insert_task(
        db,
        TaskState(
            id="other",
            owner="bob",
            spec=TaskSpec(type="echo"),
            status=TaskStatus.PENDING,
            version=1,
            created_ms=5,
            updated_ms=5,
        ),
        None,
    )
    seen, cursor = [], None
    while True:
        with db.session() as s:
            rows, cursor = tasks_repo.list_tasks(s, "alice", None, None, 3, cursor)
            seen += [r.id for r in rows]
        if cursor is None:
            break
    assert seen == ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]


def test_a_new_task_is_stored_whole_with_its_first_transition(db):
    spec = TaskSpec(type="echo", payload={"a": [1, "x"]}, priority=7, capabilities=("gpu", "llm"), group="g")
    tasks_repo.insert_task(
        db,
        TaskState(
            id="t9",
            owner="alice",
            spec=spec,
            status=TaskStatus.PENDING,
            version=1,
            created_ms=2_000,
            updated_ms=2_000,
        ),
        "key-1",
    )
    with db.session() as s:
        row = tasks_repo.get_row(s, "t9")
        assert tasks_repo.row_to_state(row).spec == spec
        assert (row.idempotency_key, row.status, row.version) == ("key-1", "PENDING", 1)
        assert [(t.version, t.from_status, t.to_status) for t in tasks_repo.transitions_of(s, "t9")] == [
            (1, None, "PENDING")
        ]


def test_a_second_task_with_the_same_idempotency_key_writes_nothing(db):
    from sqlalchemy.exc import IntegrityError

    tasks_repo.insert_task(db, state(1, TaskStatus.PENDING), "k")
    again = TaskState(
        id="t2",
        owner="alice",
        spec=TaskSpec(type="echo"),
        status=TaskStatus.PENDING,
        version=1,
        created_ms=1_000,
        updated_ms=1_000,
    )
    with pytest.raises(IntegrityError):
        tasks_repo.insert_task(db, again, "k")
    with db.session() as s:
        assert tasks_repo.get_row(s, "t2") is None
        assert tasks_repo.transitions_of(s, "t2") == []


def test_following_survives_a_pooled_connection_the_server_dropped(pg_db):
    """A Postgres restart or failover leaves the pool's idle connections dead; there is
    no ping per checkout, so the first use fails, and following (idempotent) runs once
    more on a new connection instead of reporting an outage that is over."""
    from sqlalchemy import text

    tasks_repo.insert_task(pg_db, state(1, TaskStatus.PENDING), None)  # a pooled connection
    with pg_db.session() as s:
        s.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert tasks_repo.follow(
        pg_db, state(2, TaskStatus.PROCESSING, attempt=1, server_id="s"), TaskStatus.PENDING
    ).written
    with pg_db.session() as s:
        assert tasks_repo.get_row(s, "t1").version == 2


def test_many_tasks_are_stored_with_a_green_psycopg2_which_refuses_copy(pg_db):
    """Under gevent (psycogreen), psycopg2 waits through a callback and refuses COPY:
    the API's job submission then stores its tasks with multi-row INSERTs."""
    from psycopg2 import extensions, extras

    states = [
        TaskState(f"g{i:04d}", "alice", TaskSpec("echo", {"i": i}), TaskStatus.PENDING, 1, 1000, 1000)
        for i in range(1500)
    ]
    pg_db.engine.dispose()
    extensions.set_wait_callback(extras.wait_select)
    try:
        with pg_db.session() as session:
            tasks_repo.insert_many(session, states)
            session.commit()
    finally:
        extensions.set_wait_callback(None)
        pg_db.engine.dispose()
    with pg_db.session() as session:
        assert tasks_repo.get_row(session, "g1499").payload == {"i": 1499}
        assert len(tasks_repo.transitions_of(session, "g0000")) == 1


def _dependent_of(dependency_id: str) -> TaskState:
    return TaskState(
        id="t2",
        owner="alice",
        spec=TaskSpec(type="echo", depends_on=(dependency_id,)),
        status=TaskStatus.WAITING,
        version=1,
        created_ms=2_000,
        updated_ms=2_000,
    )


def test_the_final_write_says_whether_anything_depends_on_the_task(pg_db):
    tasks_repo.insert_task(pg_db, state(1, TaskStatus.PENDING), None)
    followed = tasks_repo.follow(
        pg_db, state(2, TaskStatus.PROCESSING, attempt=1, server_id="s"), TaskStatus.PENDING
    )
    assert followed.written and not followed.may_have_dependents
    with pg_db.session() as s:
        tasks_repo.insert_many(s, [_dependent_of("t1")], [("t2", "t1")])
    done = state(3, TaskStatus.COMPLETED, attempt=1)
    assert tasks_repo.follow(pg_db, done, TaskStatus.PROCESSING) == tasks_repo.Followed(True, True)
    # A write that found the row newer reads nothing: the caller looks for dependents.
    assert tasks_repo.follow(pg_db, done, TaskStatus.PROCESSING) == tasks_repo.Followed(False, True)


def test_a_final_write_waits_for_a_dependent_being_stored_and_then_sees_it(pg_db):
    """The dependent's transaction holds the dependency's row lock from its flag to its
    commit: the dependency's end, written meanwhile, waits and then reads the flag (the
    other order is the dependent's own re-check after its commit)."""
    import threading
    import time

    tasks_repo.insert_task(pg_db, state(2, TaskStatus.PROCESSING, attempt=1, server_id="s"), None)
    ended: list[tasks_repo.Followed] = []
    end = threading.Thread(
        target=lambda: ended.append(
            tasks_repo.follow(pg_db, state(3, TaskStatus.COMPLETED, attempt=1), TaskStatus.PROCESSING)
        )
    )
    with pg_db.session() as s:
        tasks_repo.insert_many(s, [_dependent_of("t1")], [("t2", "t1")])
        end.start()
        time.sleep(0.5)
        assert end.is_alive() and not ended  # waiting for the row's lock
    end.join(10)
    assert ended == [tasks_repo.Followed(True, True)]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_without_postgres_every_end_looks_for_dependents(db):
    tasks_repo.insert_task(db, state(1, TaskStatus.PENDING), None)
    followed = tasks_repo.follow(db, state(2, TaskStatus.COMPLETED, attempt=1), TaskStatus.PENDING)
    assert followed == tasks_repo.Followed(True, True)
