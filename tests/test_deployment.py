"""What the deployment files promise, checked on the files themselves and on what
`taskfleet up` starts: Flower never with a default password nor on every interface,
Redis with a memory cap and (embedded) a password, dependency floors past known CVEs,
a container that does not run as root."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

import pytest
import redis as redis_lib
from packaging.requirements import Requirement
from packaging.version import Version

from app.devstack import Supervisor, embedded_redis, flower_line, masked_url, read_procfile, stack_env
from tests.conftest import ROOT

COMPOSE = (ROOT / "docker-compose.yml").read_text()


def _service(name: str) -> str:
    """The text of one compose service (up to the next one)."""
    match = re.search(rf"^  {name}:\n(.*?)(?=^  [a-z-]+:\n|^volumes:)", COMPOSE, re.M | re.S)
    assert match, name
    return match.group(1)


def _run_flower_line(env: dict[str, str], program: str = "celery") -> subprocess.CompletedProcess:
    """The Procfile's flower line run as `taskfleet up` runs it (bash -c exec), with
    ``celery`` replaced by ``program``."""
    command = read_procfile(ROOT / "Procfile")["flower"].replace("celery", program, 1)
    env = {"PATH": os.environ["PATH"], **env}
    return subprocess.run(["bash", "-c", f"exec {command}"], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("value", [None, ""])
def test_the_procfile_refuses_to_start_flower_without_credentials(value):
    env = {} if value is None else {"FLOWER_BASIC_AUTH": value}
    result = _run_flower_line(env)
    assert result.returncode != 0
    assert "set FLOWER_BASIC_AUTH=user:password" in result.stderr


def test_the_procfile_starts_flower_on_loopback_with_the_given_credentials():
    args = _run_flower_line({"FLOWER_BASIC_AUTH": "ops:s3cret"}, program="echo").stdout.split()
    assert "--address=127.0.0.1" in args and "--basic-auth=ops:s3cret" in args
    args = _run_flower_line({"FLOWER_BASIC_AUTH": "ops:s3cret", "FLOWER_ADDRESS": "10.0.0.5"}, "echo")
    assert "--address=10.0.0.5" in args.stdout.split()


def test_no_default_flower_password_anywhere():
    for name in ("Procfile", "docker-compose.yml", ".env.example", "README.md"):
        assert "admin:admin" not in (ROOT / name).read_text(), name
    for path in (ROOT / "docs").rglob("*.md"):
        assert "admin:admin" not in path.read_text(), path


def test_compose_demands_flower_credentials_and_publishes_it_on_loopback_only():
    flower = _service("flower")
    assert "${FLOWER_BASIC_AUTH:?" in flower  # sh refuses to start it without them
    assert re.search(r'ports: \["127\.0\.0\.1:5555:5555"\]', flower)
    for name in ("postgres", "redis"):
        assert "ports:" not in _service(name), f"{name} must not be published"


def test_compose_caps_redis_memory_without_eviction():
    redis_service = _service("redis")
    assert '"--maxmemory", "${REDIS_MAXMEMORY:-256mb}"' in redis_service
    assert '"--maxmemory-policy", "noeviction"' in redis_service


def test_the_container_runs_as_an_unprivileged_user():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    last_user = max(i for i, line in enumerate(lines) if line.startswith("USER "))
    assert not any(line.startswith("RUN ") for line in lines[last_user:]), "USER comes after the installs"
    assert any("chown" in line and "/tmp/taskfleet" in line for line in lines)  # $TASKFLEET_HOME


#: Lowest versions without the known CVEs (see the comments in setup.cfg).
FLOORS = {
    "gunicorn": "23.0",
    "requests": "2.32.4",
    "flask": "3.1.1",
    "werkzeug": "3.0.6",
    "jinja2": "3.1.6",
    "urllib3": "2.5.0",
    "pyjwt": "2.10.1",
    "tornado": "6.5",
    "celery": "5.4",
    "redis": "5.0",
    "sqlalchemy": "2.0",
    "flask-jwt-extended": "4.6",
}


def test_dependency_floors_exclude_versions_with_known_cves():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    requirements = {
        (req := Requirement(line.strip())).name.lower(): req
        for line in lines
        if line.strip() and not line.strip().startswith("#")
    }
    for name, floor in FLOORS.items():
        specs = [s for s in requirements[name].specifier if s.operator == ">="]
        assert specs and Version(specs[0].version) >= Version(floor), (name, str(specs))


def test_taskfleet_up_generates_flower_credentials_once_and_prints_them(tmp_path):
    env = stack_env(tmp_path, {"PATH": "/usr/bin"})
    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    assert user == "taskfleet" and len(password) >= 20
    assert (tmp_path / "flower_password").stat().st_mode & 0o077 == 0
    assert stack_env(tmp_path, {"PATH": "/usr/bin"})["FLOWER_BASIC_AUTH"] == env["FLOWER_BASIC_AUTH"]
    assert env["FLOWER_ADDRESS"] == "127.0.0.1"
    line = flower_line({**env, "FLOWER_PORT": "5566"})
    assert line == f"Flower   http://127.0.0.1:5566  (user taskfleet, password {password})"
    given = stack_env(tmp_path / "other", {"PATH": "/usr/bin", "FLOWER_BASIC_AUTH": "me:mine"})
    assert given["FLOWER_BASIC_AUTH"] == "me:mine"
    assert not (tmp_path / "other" / "flower_password").exists()


def test_urls_are_printed_with_their_password_masked():
    assert masked_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert masked_url("redis://user:pw@h:1/2") == "redis://user:***@h:1/2"
    assert masked_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_embedded_redis_wants_its_password_binds_loopback_and_caps_memory(tmp_path):
    env = stack_env(tmp_path, {"PATH": os.environ["PATH"], "REDIS_MAXMEMORY": "64mb"})
    supervisor = Supervisor(env=env, cwd=tmp_path, log_dir=tmp_path / "logs")
    try:
        with embedded_redis(supervisor, tmp_path) as url:
            password = redis_lib.Redis.from_url(url).connection_pool.connection_kwargs["password"]
            assert password and len(password) >= 20
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            with pytest.raises(redis_lib.AuthenticationError):
                redis_lib.Redis(port=port, protocol=2).set("k", "v")
            client = redis_lib.Redis.from_url(url, decode_responses=True)
            assert client.ping()
            assert client.config_get("bind")["bind"] == "127.0.0.1"
            assert client.config_get("maxmemory")["maxmemory"] == str(64 * 1024 * 1024)
            assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
            # ps shows the command line to every user: the password is not on it.
            cmdline = Path(f"/proc/{supervisor.processes[0][1].pid}/cmdline").read_bytes()
            assert password.encode() not in cmdline
    finally:
        supervisor.stop_all()
    assert password not in (tmp_path / "logs" / "redis.log").read_text()
