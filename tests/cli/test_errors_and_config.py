"""Where the CLI finds the server and the token, how it fails (a message and a non-zero
exit, never a traceback), and that the existing commands still work."""

from __future__ import annotations

import json

from app.devstack import free_port
from app.remote_cli.render import sparkline
from tests.cli.test_tasks_cli import ok
from tests.conftest import JWT_SECRET


def failed(process, code: int = 1) -> str:
    assert process.returncode == code, (process.stdout, process.stderr)
    assert "Traceback" not in process.stderr and process.stdout == ""
    return process.stderr


def test_api_errors_end_with_the_api_message_and_exit_1(taskfleet, fleet):
    assert failed(taskfleet("tasks", "show", "123")) == "error: task 123 not found (404)\n"
    assert failed(taskfleet("tasks", "ls", token="forged")) == "error: invalid token (401)\n"
    assert failed(taskfleet("servers", "ls", token=fleet.alice)) == "error: requires role admin (403)\n"
    unprocessable = failed(taskfleet("submit", "echo", "--mode", "sync", "--timeout", "0"))
    assert unprocessable.startswith("error: ") and unprocessable.endswith("(422)\n")
    assert failed(taskfleet("servers", "rm", "nope")) == "error: server nope not found (404)\n"


def test_no_server_no_token_or_a_bad_payload_fail_cleanly(taskfleet):
    nowhere = failed(taskfleet("tasks", "ls", TASKFLEET_URL=f"http://127.0.0.1:{free_port()}"))
    assert nowhere.startswith("error: cannot connect to http://127.0.0.1:")
    no_token = failed(taskfleet("tasks", "ls", token=None))
    assert no_token.startswith("error: no token: pass --token, set TASKFLEET_TOKEN, or put token =")
    assert failed(taskfleet("tasks", "ls", TASKFLEET_URL="localhost:1")).startswith("error: base_url must be")
    bad = failed(taskfleet("submit", "echo", "--payload", "{nope"), code=2)
    assert "Invalid value for --payload: --payload is not JSON: Expecting property name" in bad


def test_the_config_file_is_read_and_flags_and_environment_come_first(taskfleet, fleet, tmp_path):
    config = tmp_path / "taskfleet.toml"
    config.write_text(f'url = "{fleet.url}"\ntoken = "{fleet.admin}"\n')
    only_file = {"token": None, "TASKFLEET_URL": None, "TASKFLEET_CONFIG": str(config)}
    from_file = taskfleet("servers", "ls", "--json", **only_file)
    assert "echo-1" in {s["id"] for s in json.loads(ok(from_file))}

    default_place = tmp_path / ".config" / "taskfleet" / "config.toml"  # HOME is tmp_path
    default_place.parent.mkdir(parents=True)
    default_place.write_text(f'token = "{fleet.alice}"\n')
    assert failed(taskfleet("servers", "ls", token=None)).endswith("(403)\n")  # alice's token, from the file
    assert ok(taskfleet("servers", "ls", "--token", fleet.admin, token=None))  # the flag wins
    dead = f"http://127.0.0.1:{free_port()}"
    assert ok(taskfleet("tasks", "ls", "--url", fleet.url, TASKFLEET_URL=dead))  # over the environment

    config.write_text("url = [")
    broken = failed(taskfleet("tasks", "ls", token=None, TASKFLEET_CONFIG=str(config)))
    assert broken.startswith(f"error: cannot read {config}: ")


def test_the_existing_commands_still_work(taskfleet):
    minted = taskfleet("token", "--role", "admin", "--sub", "ops", JWT_SECRET_KEY=JWT_SECRET)
    assert ok(minted).count(".") == 2
    listed = ok(taskfleet("--help"))
    for name in ("token", "migrate", "up", "demo-backend", "submit", "tasks", "servers", "stats"):
        assert f"  {name} " in listed


def test_the_sparkline_scales_to_the_busiest_hour():
    assert sparkline([0, 1, 2, 4, 8]) == "▁▂▃▅█"
    assert sparkline([0, 0, 0]) == "▁▁▁" and sparkline([]) == ""
    assert sparkline([1, 1000]) == "▂█"  # any task at all is above an empty hour
