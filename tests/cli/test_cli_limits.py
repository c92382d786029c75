"""``taskfleet limits`` on the real stack, as a subprocess (admin)."""

from __future__ import annotations

import json

from tests.cli.test_tasks_cli import ok


def test_limits_are_set_listed_shown_and_removed(taskfleet):
    assert ok(taskfleet("limits", "set", "cli-static", "--max", "3")) == "limit cli-static: 3 now, static\n"
    scaled = ok(taskfleet("limits", "set", "cli-scaled", "--dynamic", "2,6,2,60,180"))
    assert scaled == "limit cli-scaled: 2 now, 2-6 by 2 (up every 60 s, down every 180 s)\n"

    table = ok(taskfleet("limits", "ls")).splitlines()
    assert table[0].split() == ["TYPE", "LIMIT", "IN", "FLIGHT", "WAITING", "RULE", "CHANGED", "(UTC)", "WHY"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["cli-static"][1:5] == ["3", "0", "0", "static"]
    assert rows["cli-scaled"][1:5] == ["2", "0", "0", "2-6"]
    listed = {item["type"]: item for item in json.loads(ok(taskfleet("limits", "ls", "--json")))}
    assert listed["cli-static"]["maxConcurrent"] == 3 and listed["cli-scaled"]["dynamic"]["max"] == 6
    shown = json.loads(ok(taskfleet("limits", "show", "cli-scaled")))
    assert shown["dynamic"] == {
        "initial": 2,
        "max": 6,
        "step": 2,
        "upEverySeconds": 60,
        "downEverySeconds": 180,
    }

    for name in ("cli-static", "cli-scaled"):
        assert ok(taskfleet("limits", "rm", name)) == f"limit {name} removed\n"
    gone = taskfleet("limits", "rm", "cli-static")
    assert gone.returncode == 1 and gone.stderr.startswith("error: ") and "(404)" in gone.stderr
    assert "cli-static" not in ok(taskfleet("limits", "ls"))


def test_a_wrong_limit_is_refused_with_a_clear_message(taskfleet, fleet):
    neither = taskfleet("limits", "set", "x")
    assert neither.returncode == 2 and "give exactly one of --max and --dynamic" in neither.stderr
    both = taskfleet("limits", "set", "x", "--max", "2", "--dynamic", "1,2,1,60,60")
    assert both.returncode == 2 and "give exactly one" in both.stderr
    short = taskfleet("limits", "set", "x", "--dynamic", "1,2")
    assert short.returncode == 2 and "initial,max,step,up,down, five whole numbers" in short.stderr
    upside_down = taskfleet("limits", "set", "x", "--dynamic", "5,2,1,60,60")
    assert upside_down.returncode == 1 and "(422)" in upside_down.stderr
    not_admin = taskfleet("limits", "ls", token=fleet.alice)
    assert not_admin.returncode == 1 and "(403)" in not_admin.stderr
    assert all("Traceback" not in p.stderr for p in (neither, both, short, upside_down, not_admin))
