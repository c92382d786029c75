"""Each Lua script's header, its bindings and its call class say the same thing.

A script's header lists every entry as ``-- KEYS[1] pool: description`` (a variable-length
tail as ``-- KEYS[3..] pools: ...``); right after the header the script binds each fixed
entry to a local of that name (``local pool = KEYS[1]``, ``local now_ms =
tonumber(ARGV[6])``) and the body reads only those locals and the tails. The call class
in ``app.store.script_calls`` names the same entries in the same order, so a caller
that passes an argument in the wrong place, or a header that is renamed without its
caller, fails here rather than in production.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from app.store import script_calls, scripts

LUA = resources.files("app.store").joinpath("lua")
SCRIPTS = sorted(p.name.removesuffix(".lua") for p in LUA.iterdir() if p.name.endswith(".lua"))
REPO = Path(__file__).resolve().parents[2]

#: ``-- KEYS[1] pool: pool hash (tf:pool:<p>)`` or ``-- ARGV[7..] fields: pairs``.
ENTRY = re.compile(r"^-- (KEYS|ARGV)\[(\d+)(\.\.)?\] ([a-z][a-z0-9_]*): \S")
#: A header line that looks like an entry, well-formed or not.
ENTRY_LIKE = re.compile(r"^-- ?(KEYS|ARGV)\s*\[")
#: A description continued on the next line, indented further than ``-- ``.
CONTINUATION = re.compile(r"^--\s{2,}\S")
#: ``local pool = KEYS[1]`` or ``local now_ms = tonumber(ARGV[6])``.
BINDING = re.compile(r"^local ([a-z][a-z0-9_]*) = (?:tonumber\((KEYS|ARGV)\[(\d+)\]\)|(KEYS|ARGV)\[(\d+)\])$")
#: ``KEYS[3]`` with a literal index: only a binding may read one.
LITERAL_INDEX = re.compile(r"\b(?:KEYS|ARGV)\[\d+\]")
#: ``for i = 7, #ARGV, 2``: iterating a tail from a literal start.
TAIL_LOOP = re.compile(r"\bfor \w+ = (\d+), #(KEYS|ARGV)\b")


@dataclass(frozen=True)
class Entry:
    kind: str  # 'KEYS' or 'ARGV'
    index: int  # 1-based; a tail's first index
    name: str
    tail: bool = False


@dataclass(frozen=True)
class Script:
    """One script's text, split into what the contract is about."""

    entries: list[Entry]  # the header's, in order
    malformed: list[str]  # header lines that look like entries but are not
    misplaced: list[str]  # entry lines outside the header's one block of entries
    bindings: list[Entry]  # the first lines of code
    body: list[tuple[int, str]]  # (line number, code without comments) after the bindings


def parse(text: str) -> Script:
    lines = text.splitlines()
    n = 0
    while n < len(lines) and (lines[n].startswith("--") or not lines[n].strip()):
        n += 1
    header, code = lines[:n], lines[n:]

    entries, malformed, misplaced = [], [], []
    block = "before"  # before, in or after the block of entry lines
    for line in header:
        match = ENTRY.match(line)
        if match:
            kind, index, dots, name = match.groups()
            entries.append(Entry(kind, int(index), name, tail=bool(dots)))
            if block == "after":
                misplaced.append(line)
            block = "in" if block != "after" else block
        elif ENTRY_LIKE.match(line):
            malformed.append(line)
        elif block == "in" and not CONTINUATION.match(line):
            block = "after"

    bindings = []
    for line in code:
        match = BINDING.match(line)
        if not match:
            break
        name, num_kind, num_index, kind, index = match.groups()
        bindings.append(Entry(num_kind or kind, int(num_index or index), name))
    body = [
        (n + len(bindings) + i + 1, line.split("--", 1)[0]) for i, line in enumerate(code[len(bindings) :])
    ]
    return Script(entries, malformed, misplaced, bindings, body)


def read(name: str) -> Script:
    return parse(LUA.joinpath(f"{name}.lua").read_text())


def fixed(entries: list[Entry], kind: str) -> list[str]:
    return [e.name for e in entries if e.kind == kind and not e.tail]


def tail(entries: list[Entry], kind: str) -> str | None:
    return next((e.name for e in entries if e.kind == kind and e.tail), None)


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_header_names_every_entry_once_in_order_with_at_most_one_tail_last(name):
    script = read(name)
    assert script.malformed == [], f"{name}: entries not in the form '-- KEYS[1] name: what'"
    assert script.misplaced == [], f"{name}: entries outside the header's one block of entries"
    assert script.entries, f"{name}: the header lists no KEYS or ARGV entries"
    names = [e.name for e in script.entries]
    assert len(names) == len(set(names)), f"{name}: an entry name is used twice"
    for kind in ("KEYS", "ARGV"):
        mine = [e for e in script.entries if e.kind == kind]
        assert [e.index for e in mine] == list(range(1, len(mine) + 1)), f"{name}: {kind} has a gap"
        assert all(not e.tail for e in mine[:-1]), f"{name}: a {kind} tail that is not last"


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_fixed_entry_is_bound_to_a_local_of_its_name_before_any_other_code(name):
    script = read(name)
    header = [(e.kind, e.index, e.name) for e in script.entries if not e.tail]
    bound = [(e.kind, e.index, e.name) for e in script.bindings]
    assert bound == header


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_body_reads_only_the_locals_and_iterates_tails_from_their_start(name):
    script = read(name)
    for kind in ("KEYS", "ARGV"):
        tails = [e for e in script.entries if e.kind == kind and e.tail]
        for number, line in script.body:
            assert not LITERAL_INDEX.search(line), f"{name}.lua:{number}: reads a fixed entry: {line}"
            if not tails:
                assert not re.search(rf"\b{kind}\b", line), f"{name}.lua:{number}: {kind} has no tail"
            for start, loop_kind in TAIL_LOOP.findall(line):
                if loop_kind == kind:
                    assert int(start) == tails[0].index, f"{name}.lua:{number}: loop misses the tail start"


def test_every_script_has_a_call_class_and_every_call_class_a_script():
    assert sorted(script_calls.CALLS) == SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_call_class_names_the_header_entries_in_the_same_order(name):
    entries = read(name).entries
    header = script_calls.Layout(
        keys=tuple(fixed(entries, "KEYS")),
        keys_tail=tail(entries, "KEYS"),
        args=tuple(fixed(entries, "ARGV")),
        args_tail=tail(entries, "ARGV"),
    )
    call = script_calls.call_class(name)
    assert call.layout() == header, f"{call.__name__} and the header of {name}.lua disagree"


def test_a_call_flattens_its_fields_in_order_with_the_tails_last():
    select = script_calls.SelectCall(
        rr_sequence="seq",
        algorithm_key="alg",
        limits_loaded="loaded",
        type_limit="tl",
        type_held="th",
        all_limit="al",
        all_held="ah",
        pools=[("p1", "p1:avail", "p1:leases", "p1:fresh"), ("p2", "p2:avail", "p2:leases", "p2:fresh")],
        lease="t:1",
        cost=1,
        seed=7,
        in_region=1,
        avoid="",
        penalty_ms=500,
        per_pool=4,
        now_ms=9,
    )
    assert select.keys() == [
        "seq",
        "alg",
        *("loaded", "tl", "th", "al", "ah"),
        *("p1", "p1:avail", "p1:leases", "p1:fresh"),
        *("p2", "p2:avail", "p2:leases", "p2:fresh"),
    ]
    assert select.args() == ["t:1", 1, 7, 1, "", 500, 4, 9]
    hydrate = script_calls.HydrateCall(
        task="tf:task:t",
        deadlines="d",
        stats="s",
        events="e",
        ttl_ms="0",
        deadline_ms="",
        new_task_type="",
        created_ms="5",
        maxlen=10,
        fields={"id": "t", "status": "PENDING"},
    )
    assert hydrate.keys() == ["tf:task:t", "d", "s", "e"]
    assert hydrate.args() == ["0", "", "", "5", 10, "id", "t", "status", "PENDING"]


def test_a_script_takes_its_own_call_and_refuses_another_scripts(redis):
    drop = scripts.load(redis, "stats_drop")
    assert drop(script_calls.StatsDropCall(batch="b", batch_id="x")) == 0
    with pytest.raises(TypeError, match="StatsDropCall"):
        drop(script_calls.StatsCutCall(live="a", batch="b", batch_id="x", now_ms=1))


def test_luacheck_knows_the_pool_library_as_it_is():
    """.luacheckrc lets the lb_* scripts read lib/pool.lua's top-level locals (the library
    is prepended to exactly those scripts): its list must be the library's own."""
    rc = (REPO / ".luacheckrc").read_text()
    (listed,) = re.findall(r"local pool_lib = \{([^}]*)\}", rc)
    lib = LUA.joinpath("lib", "pool.lua").read_text()
    defined = re.findall(r"^local function (\w+)", lib, re.M) + re.findall(r"^local (\w+) =", lib, re.M)
    assert sorted(re.findall(r'"(\w+)"', listed)) == sorted(defined)
    assert {name for name in SCRIPTS if name.startswith("lb_")} == scripts.USES_POOL_LIB
