"""``taskfleet token --ttl`` within its bounds, and ``taskfleet tokens revoke|ls``
against the real stack: a leaked token revoked from the command line stops working."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from click.testing import CliRunner

from app.cli import main
from tests.cli.test_tasks_cli import ok
from tests.client_fleet import token
from tests.conftest import JWT_SECRET

#: Seconds the other API process may go on with the revocations it read (REFRESH_S), and more.
SPREAD_S = 10


def mint(*args: str, **env: str):
    env = {"JWT_SECRET_KEY": JWT_SECRET, **env}
    return CliRunner().invoke(main, ["token", "--sub", "ops", *args], env=env)


def test_a_minted_token_lives_its_ttl_and_carries_iat_and_a_jti():
    result = mint("--ttl", "120")
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 120 and claims["jti"] and claims["sub"] == "ops"
    default = jwt.decode(mint().output.strip(), JWT_SECRET, algorithms=["HS256"])
    assert default["exp"] - default["iat"] == 86_400


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (("--ttl", "0"), {}, "--ttl must be a positive number of seconds, got 0"),
        (("--ttl", "-5"), {}, "--ttl must be a positive number of seconds, got -5"),
        (("--ttl", "2592001"), {}, "--ttl 2592001 is above the maximum of 2592000 seconds (TOKEN_MAX_TTL_S)"),
        (("--ttl", "61"), {"TOKEN_MAX_TTL_S": "60"}, "--ttl 61 is above the maximum of 60 seconds"),
        ((), {"TOKEN_MAX_TTL_S": "60"}, "TOKEN_TTL_S 86400 is above the maximum of 60 seconds"),
    ],
)
def test_a_ttl_out_of_bounds_is_refused_with_a_message(args, env, said):
    result = mint(*args, **env)
    assert result.exit_code == 1 and said in result.output and "eyJ" not in result.output


def test_the_maximum_ttl_itself_is_allowed():
    assert mint("--ttl", "60", TOKEN_MAX_TTL_S="60").exit_code == 0


def refused_soon(taskfleet, leaked: str) -> str:
    """The error of ``tasks ls`` with the token, once every API process refuses it."""
    deadline = time.monotonic() + SPREAD_S
    while True:
        answers = {taskfleet("tasks", "ls", token=leaked).stderr for _ in range(4)}  # both processes
        revoked = all(answer.startswith("error: token revoked") for answer in answers)
        if revoked or time.monotonic() > deadline:
            return "|".join(sorted(answers))
        time.sleep(0.5)


def test_a_leaked_token_revoked_from_the_command_line_is_refused(taskfleet):
    sub = f"leaky-{uuid.uuid4().hex[:8]}"
    leaked, kept = token(sub, "client"), token(sub, "client")
    ok(taskfleet("tasks", "ls", token=leaked))
    jti = jwt.decode(leaked, JWT_SECRET, algorithms=["HS256"])["jti"]
    assert ok(taskfleet("tokens", "revoke", leaked)) == f"token {jti} (sub {sub}) revoked\n"
    assert refused_soon(taskfleet, leaked) == "error: token revoked (401)\n"
    ok(taskfleet("tasks", "ls", token=kept))
    [listed] = [t for t in json.loads(ok(taskfleet("tokens", "ls", "--json")))["tokens"] if t["jti"] == jti]
    assert listed["sub"] == sub and listed["expiresAt"] is not None  # from the token's exp
    assert jti in ok(taskfleet("tokens", "ls"))


def test_every_token_of_a_subject_revoked_from_the_command_line_is_refused(taskfleet):
    sub = f"leaky-{uuid.uuid4().hex[:8]}"
    old = token(sub, "client")
    said = ok(taskfleet("tokens", "revoke", "--sub", sub))
    assert said.startswith(f"tokens of {sub} issued before ") and said.endswith(" UTC revoked\n")
    assert refused_soon(taskfleet, old).startswith("error: token revoked: every token of its subject")
    ok(taskfleet("tokens", "revoke", "--sub", sub, "--before", "2020-01-01T00:00:00Z"))  # never backwards
    assert refused_soon(taskfleet, old).startswith("error: token revoked")


def test_revoking_needs_one_target_and_the_admin_role(taskfleet, fleet):
    assert taskfleet("tokens", "revoke").returncode == 2
    assert taskfleet("tokens", "revoke", "not-a-jwt").returncode == 2
    assert taskfleet("tokens", "revoke", "--jti", "x", "--before", "2030-01-01T00:00:00").returncode == 2
    refused = taskfleet("tokens", "revoke", "--jti", "x", token=fleet.alice)
    assert refused.returncode == 1 and refused.stderr == "error: requires role admin (403)\n"
