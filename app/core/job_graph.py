"""The dependencies among a job's items: ``dependsOn`` entries that name a sibling's
``key`` become that sibling's task id, the rest are ids of tasks that exist already;
siblings that wait for each other in a circle are refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobGraph:
    #: Each item's dependencies as task ids, in the order given, without repeats.
    depends_on: list[tuple[str, ...]]
    #: Each item's dependencies on its siblings, by item index.
    sibling_deps: list[tuple[int, ...]]
    #: Dependencies outside the job (ids to look up), each once.
    external: list[str]
    #: What is wrong, by item index.
    problems: dict[int, str] = field(default_factory=dict)


def resolve(keys: Sequence[str | None], depends_on: Sequence[Sequence[str]], ids: Sequence[str]) -> JobGraph:
    """Resolve every item's ``depends_on`` (``keys``: the items' keys; ``ids``: the task
    ids the items will get) and find the items caught in a cycle."""
    index_of = {key: i for i, key in enumerate(keys) if key is not None}
    resolved: list[tuple[str, ...]] = []
    siblings: list[tuple[int, ...]] = []
    external: dict[str, None] = {}
    for entries in depends_on:
        task_ids: dict[str, None] = {}
        sibling: dict[int, None] = {}
        for entry in entries:
            if entry in index_of:
                sibling[index_of[entry]] = None
                task_ids[ids[index_of[entry]]] = None
            else:
                external[entry] = None
                task_ids[entry] = None
        resolved.append(tuple(task_ids))
        siblings.append(tuple(sibling))
    problems = {i: "waits for itself through a dependency cycle" for i in _in_cycles(siblings)}
    return JobGraph(resolved, siblings, list(external), problems)


def _in_cycles(sibling_deps: list[tuple[int, ...]]) -> list[int]:
    """Items that can never start because a cycle is upstream of them or runs through
    them (Kahn's algorithm: what is left once every item free to start is removed)."""
    waiting_on = [len(deps) for deps in sibling_deps]
    dependents: list[list[int]] = [[] for _ in sibling_deps]
    for item, deps in enumerate(sibling_deps):
        for dep in deps:
            dependents[dep].append(item)
    ready = [item for item, n in enumerate(waiting_on) if n == 0]
    while ready:
        item = ready.pop()
        for dependent in dependents[item]:
            waiting_on[dependent] -= 1
            if waiting_on[dependent] == 0:
                ready.append(dependent)
    return [item for item, n in enumerate(waiting_on) if n > 0]
