from app.core.alerts import AlertRules, Observation, firing

RULES = AlertRules(failure_rate=0.5, failure_min=20, backlog=1000)


def seen(**kw):
    return Observation(**{"window_s": 300, "finished": 0, "failed": 0, "pending": 0, **kw})


def test_failure_rate_alerts_at_the_threshold_once_enough_tasks_finished():
    assert firing(RULES, seen(finished=19, failed=19)) == {}
    assert firing(RULES, seen(finished=20, failed=9)) == {}
    assert "10 of 20" in firing(RULES, seen(finished=20, failed=10))["failure_rate"]


def test_backlog_alerts_above_the_threshold():
    assert firing(RULES, seen(pending=1000)) == {}
    assert firing(RULES, seen(pending=1001))["backlog"] == "1001 tasks are PENDING (threshold 1000)"


def test_each_unserved_profile_is_its_own_alert():
    alerts = firing(RULES, seen(unserved=("gpu|", "gpu,llm|eu")))
    assert alerts["no_server:gpu|"] == "tasks wait for capabilities [gpu] and no healthy server offers them"
    assert "in group eu" in alerts["no_server:gpu,llm|eu"]


def test_each_reported_resource_above_its_threshold_is_one_alert_per_server_and_figure():
    reported = {
        "s1": {"cpu": 0.81, "memory": 0.85, "disk": 0.95},
        "s2": {"network": 0.9, "cpu": 0.8},
    }
    alerts = firing(RULES, seen(reported=reported))
    assert set(alerts) == {"resource:s1:cpu", "resource:s1:disk", "resource:s2:network"}
    assert alerts["resource:s1:cpu"] == "server s1 reports cpu at 81% (threshold 80%)"
    strict = AlertRules(cpu=0.5, memory=0.5, disk=0.5, network=0.95)
    assert set(firing(strict, seen(reported=reported))) == {
        "resource:s1:cpu",
        "resource:s1:memory",
        "resource:s1:disk",
        "resource:s2:cpu",
    }
