"""The layout rules a reader relies on, checked on the source itself: the ORM models stay
in the store, and a Redis hash's field names appear only in its record class."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from marshmallow import Schema

from app.api import schemas
from app.core.tally import METRICS
from app.store.models import Base
from app.store.records import POOL_SLOT_FIELDS, PoolMeta, ServerRecord, TaskRecord

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "app" / "store" / "records.py"
#: A backend's code (the demo fleet), not the dispatcher's: its JSON is its own.
NOT_THE_DISPATCHER = {ROOT / "app" / "demo_backend.py"}
#: Redis hash commands whose field arguments are hash field names.
HASH_COMMANDS = {"hget", "hset", "hsetnx", "hmget", "hincrby", "hincrbyfloat", "hdel", "hexists"}


def sources() -> Iterator[tuple[Path, ast.AST]]:
    for folder in ("app", "workers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def api_names() -> set[str]:
    """Every field name (and data key) of the API's schemas: JSON names the views use."""
    names: set[str] = set()
    for value in vars(schemas).values():
        if isinstance(value, type) and issubclass(value, Schema):
            for name, declared in value._declared_fields.items():
                names |= {name, declared.data_key or name}
    return names


def other_names() -> set[str]:
    """Names that other shapes share with the hashes for good reasons: the API's JSON,
    the database's columns, the statistics' metric names."""
    columns = {column.name for table in Base.metadata.tables.values() for column in table.columns}
    return api_names() | columns | set(METRICS)


def hash_field_names() -> set[str]:
    """Field names of the Redis hashes that no other shape uses (a name like 'status' is
    everywhere for good reasons; the rule below still keeps every hash command in the
    store)."""
    fields = set(ServerRecord.field_names()) | set(PoolMeta.field_names()) | set(TaskRecord.field_names())
    fields |= set(POOL_SLOT_FIELDS)
    return fields - other_names()


def string_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """String constants used as a key: a subscript, a dict-literal key, the key of a
    ``.get``/``.pop``, or any argument of a Redis hash command."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            yield node.lineno, node.slice.value
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant):
                    yield key.lineno, key.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            args = node.args[:1] if name in ("get", "pop", "setdefault") else node.args
            if name in HASH_COMMANDS or name in ("get", "pop", "setdefault"):
                for arg in args:
                    if isinstance(arg, ast.Constant):
                        yield arg.lineno, arg.value


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def test_no_module_outside_the_store_imports_the_orm_models():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path, tree in sources()
        if not path.is_relative_to(ROOT / "app" / "store")
        for line, module in imported_modules(tree)
        if module == "app.store.models" or module.startswith("app.store.models.")
    ]
    assert not offenders, f"ORM models imported outside app/store: {offenders}"


def test_hash_field_names_appear_only_in_their_record_classes():
    banned = hash_field_names()
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {value!r}"
        for path, tree in sources()
        if path != RECORDS and path not in NOT_THE_DISPATCHER
        for line, value in string_uses(tree)
        if isinstance(value, str) and value in banned
    ]
    assert not offenders, f"Redis hash field names outside app/store/records.py: {offenders}"


def test_only_the_store_runs_redis_hash_commands():
    offenders = []
    for path, tree in sources():
        if path.is_relative_to(ROOT / "app" / "store"):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in HASH_COMMANDS | {"hgetall"}
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"Redis hash commands outside app/store: {offenders}"


def test_the_check_would_see_a_raw_field_name():
    tree = ast.parse('live = client.hgetall(k)\nif live.get("offline_reason") == "silent": pass\n')
    assert any(value in hash_field_names() for _, value in string_uses(tree))


LUA = ROOT / "app" / "store" / "lua"
#: Positions of field names among a hash command's arguments after the key.
FIELD_POSITIONS = {
    "HGET": "first",
    "HINCRBY": "first",
    "HSETNX": "first",
    "HSET": "even",
    "HMGET": "all",
    "HDEL": "all",
}


def redis_calls(text: str) -> Iterator[tuple[str, str, list[str]]]:
    """(command, key local, arguments after the key) of every ``redis.call`` in ``text``."""
    start = 0
    while (at := text.find("redis.call(", start)) != -1:
        depth, i = 1, at + len("redis.call(")
        args, current = [], ""
        while depth:
            ch = text[i]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            if ch == "," and depth == 1:
                args.append(current.strip())
                current = ""
            elif depth:
                current += ch
            i += 1
        args.append(current.strip())
        start = i
        if len(args) >= 2:
            yield args[0].strip("'"), args[1], args[2:]


def lua_fields(key_local: str) -> dict[str, set[str]]:
    """Per script: the literal field names it reads or writes on the hash ``key_local``."""
    found: dict[str, set[str]] = {}
    for path in sorted(LUA.glob("*.lua")):
        for command, key, args in redis_calls(path.read_text()):
            where = FIELD_POSITIONS.get(command)
            if key != key_local or where is None or not args:
                continue
            picked = args[:1] if where == "first" else args[::2] if where == "even" else args
            names = {a.strip("'") for a in picked if a.startswith("'") and a.endswith("'")}
            found.setdefault(path.name, set()).update(names)
    return found


def test_the_lua_scripts_use_only_fields_of_the_server_and_task_records():
    server, task = lua_fields("server"), lua_fields("task")
    assert server and task  # the scripts were read
    for script, names in server.items():
        assert names <= set(ServerRecord.field_names()), (script, names - set(ServerRecord.field_names()))
    for script, names in task.items():
        assert names <= set(TaskRecord.field_names()), (script, names - set(TaskRecord.field_names()))


def test_the_pool_slot_fields_are_the_same_list_in_python_and_lua():
    text = (LUA / "lib" / "pool.lua").read_text()
    (table,) = re.findall(r"^local FIELDS = \{([^}]*)\}", text, re.M)
    assert tuple(name.strip(" '\n") for name in table.split(",")) == POOL_SLOT_FIELDS


def test_the_lua_resource_constants_are_the_cores():
    from app.core.balancing import REPORT_FRESH_S, UNKNOWN_LOAD

    text = (LUA / "lib" / "pool.lua").read_text()
    assert re.findall(r"^local FRESH_MS = (\d+)$", text, re.M) == [str(REPORT_FRESH_S * 1000)]
    assert re.findall(r"^local UNKNOWN_LOAD = ([\d.]+)$", text, re.M) == [str(UNKNOWN_LOAD)]
