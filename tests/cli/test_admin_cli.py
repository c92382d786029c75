"""``taskfleet servers`` and ``taskfleet stats`` on the real stack, as a subprocess."""

from __future__ import annotations

import json

from app.remote_cli.render import BLOCKS
from tests.cli.test_tasks_cli import ok


def test_servers_are_added_listed_shown_maintained_and_removed(taskfleet, fleet):
    predict, health = fleet.endpoints()["predict"], fleet.endpoints()["health"]
    added = taskfleet(
        "servers", "add", "cli-1", "--predict", predict, "--health", health,
        "--cap", "cli", "--cap", "spare", "--group", "green", "--max-concurrent", "3", "--region", "eu",
        "--callback-signature", "required",
        TASKFLEET_SERVER_API_KEY="from-the-environment",
    )  # fmt: skip
    assert ok(added).startswith("server cli-1 registered: ")
    shown = json.loads(ok(taskfleet("servers", "show", "cli-1")))
    assert shown["capabilities"] == ["cli", "spare"] and shown["groups"] == ["green"]
    assert shown["maxConcurrent"] == 3 and shown["hasApiKey"] is True and "metrics" in shown
    assert shown["callbackSignature"] == "required"
    again = ("servers", "add", "cli-1", "--predict", predict, "--health", health, "--cap", "cli")
    ok(taskfleet(*again, "--cap", "spare", "--group", "green", "--max-concurrent", "3", "--region", "eu"))
    assert json.loads(ok(taskfleet("servers", "show", "cli-1")))["callbackSignature"] == "required"
    ok(taskfleet(*again, "--cap", "spare", "--group", "green", "--max-concurrent", "3", "--region", "eu",
                 "--callback-signature", "default"))  # fmt: skip
    assert json.loads(ok(taskfleet("servers", "show", "cli-1")))["callbackSignature"] is None

    table = ok(taskfleet("servers", "ls", "--group", "green")).splitlines()
    assert table[0].split() == ["ID", "NAME", "STATUS", "SLOTS", "CAPABILITIES", "GROUPS", "REGION"]
    row = table[1].split()
    assert row[:2] == ["cli-1", "cli-1"] and row[3:] == ["0/3", "cli,spare", "green", "eu"]
    assert {s["id"] for s in json.loads(ok(taskfleet("servers", "ls", "--json")))} >= {"echo-1", "cli-1"}

    assert ok(taskfleet("servers", "maintenance", "cli-1", "on")) == "server cli-1: maintenance on\n"
    assert json.loads(ok(taskfleet("servers", "show", "cli-1")))["metrics"]["maintenance"] is True
    ok(taskfleet("servers", "maintenance", "cli-1", "off"))
    assert ok(taskfleet("servers", "heartbeat", "cli-1", "--in-flight", "0", "--gpu", "0.3")).startswith(
        "server cli-1: "
    )
    assert ok(taskfleet("servers", "rm", "cli-1")) == "server cli-1: draining\n"


def test_stats_show_totals_and_a_24_hour_sparkline(taskfleet):
    ok(taskfleet("submit", "echo", "--cap", "echo", "--wait"))
    out = ok(taskfleet("stats"))
    lines = out.splitlines()
    assert lines[0].split()[0] == "tasks" and lines[0].endswith("submitted")
    spark = next(line for line in lines if line.startswith("24 h")).split()[2]
    assert len(spark) == 24 and set(spark) <= set(BLOCKS) and spark[-1] != BLOCKS[0]
    figures = json.loads(ok(taskfleet("stats", "--json")))
    assert figures["stats"]["totalTasks"] >= 1 and len(figures["hourly"]) == 24
    assert f"{figures['stats']['totalTasks']:,} submitted" in lines[0]
    past = json.loads(ok(taskfleet("stats", "--json", "--to", "2000-01-01")))
    assert past["stats"]["totalTasks"] == 0
