"""``taskfleet clients`` on the real stack, as a subprocess (admin)."""

from __future__ import annotations

import json

from tests.cli.test_tasks_cli import ok


def test_a_clients_limits_are_set_shown_and_reset(taskfleet):
    sub = "cli/team@example.com"
    out = ok(taskfleet("clients", "set", sub, "--rate", "2.5", "--burst", "50", "--weight", "2"))
    assert out == f"client {sub}: 2.5 tasks/s, burst 50, at most 100000 unfinished, weight 2\n"
    out = ok(taskfleet("clients", "set", sub, "--burst", "default", "--max-unfinished", "9"))
    assert out == f"client {sub}: 2.5 tasks/s, burst 20000, at most 9 unfinished, weight 2\n"
    shown = json.loads(ok(taskfleet("clients", "show", sub)))
    assert shown["stored"] == {"submitsPerSecond": 2.5, "burst": None, "maxUnfinished": 9, "weight": 2}
    assert shown["usage"]["unfinished"] == 0
    out = ok(taskfleet("clients", "reset", sub))
    assert out == f"client {sub}: 1000 tasks/s, burst 20000, at most 100000 unfinished, weight 1\n"


def test_wrong_client_limits_are_refused_with_a_clear_message(taskfleet, fleet):
    nothing = taskfleet("clients", "set", "x")
    assert nothing.returncode == 2 and "give at least one of --rate" in nothing.stderr
    zero = taskfleet("clients", "set", "x", "--burst", "0")
    assert zero.returncode == 2 and "'0' is not a positive whole number or 'default'" in zero.stderr
    too_heavy = taskfleet("clients", "set", "x", "--weight", "5000")
    assert too_heavy.returncode == 1 and "(422)" in too_heavy.stderr
    not_admin = taskfleet("clients", "show", "alice", token=fleet.alice)
    assert not_admin.returncode == 1 and "(403)" in not_admin.stderr
    assert all("Traceback" not in p.stderr for p in (nothing, zero, too_heavy, not_admin))
