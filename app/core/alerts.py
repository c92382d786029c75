"""Alert rules as pure functions: what is wrong, given what was observed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: The figures servers report in heartbeats that alert above a threshold (AlertRules).
RESOURCES = ("cpu", "memory", "disk", "network")


@dataclass(frozen=True)
class AlertRules:
    #: Fraction of finished tasks that failed or timed out, over the window, that alerts.
    failure_rate: float = 0.5
    #: Fewest finished tasks in the window before the failure rate means anything.
    failure_min: int = 20
    #: PENDING tasks above which the backlog alerts.
    backlog: int = 1000
    #: Fractions (0..1) of a resource in use, reported by a server, above which it alerts.
    cpu: float = 0.8
    memory: float = 0.85
    disk: float = 0.9
    network: float = 0.8


@dataclass(frozen=True)
class Observation:
    window_s: int
    finished: int
    failed: int
    pending: int
    #: Requirement profiles ("capabilities|group") with waiting tasks and no healthy server.
    unserved: tuple[str, ...] = ()
    #: Fresh figures servers reported: server id -> figure (one of RESOURCES) -> fraction.
    reported: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def firing(rules: AlertRules, seen: Observation) -> dict[str, str]:
    """Alerts that hold now: key -> message. A key names one condition, so the same
    condition keeps its key from one check to the next."""
    alerts: dict[str, str] = {}
    if seen.finished >= rules.failure_min and seen.failed / seen.finished >= rules.failure_rate:
        alerts["failure_rate"] = (
            f"{seen.failed} of {seen.finished} tasks finished in the last {seen.window_s}s failed "
            f"or timed out ({seen.failed / seen.finished:.0%}, threshold {rules.failure_rate:.0%})"
        )
    if seen.pending > rules.backlog:
        alerts["backlog"] = f"{seen.pending} tasks are PENDING (threshold {rules.backlog})"
    for profile in seen.unserved:
        capabilities, _, group = profile.partition("|")
        needs = f"capabilities [{capabilities}]" + (f" in group {group}" if group else "")
        alerts[f"no_server:{profile}"] = f"tasks wait for {needs} and no healthy server offers them"
    for server_id, figures in sorted(seen.reported.items()):
        for name in RESOURCES:
            value, limit = figures.get(name), getattr(rules, name)
            if value is not None and value > limit:
                alerts[f"resource:{server_id}:{name}"] = (
                    f"server {server_id} reports {name} at {value * 100:.3g}% (threshold {limit * 100:.3g}%)"
                )
    return alerts
