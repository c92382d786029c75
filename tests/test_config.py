import pytest

from app.config import Settings


def test_settings_come_from_the_environment_with_documented_defaults():
    s = Settings.from_env({"PORT": "9000", "REDIS_URL": "redis://r:6379/1"})
    assert s.port == 9000 and s.redis_url == "redis://r:6379/1"
    assert s.public_url == "http://127.0.0.1:9000"
    assert s.database_url.startswith("sqlite:///")
    assert Settings.from_env({"PUBLIC_URL": "https://tf.example.com/"}).public_url == "https://tf.example.com"


def test_the_body_limit_is_32_mib_unless_set():
    assert Settings.from_env({}).max_body_bytes == 32 * 1024 * 1024
    assert Settings.from_env({"MAX_BODY_BYTES": "1024"}).max_body_bytes == 1024
    assert Settings.from_env({}).flask_config()["MAX_CONTENT_LENGTH"] == 32 * 1024 * 1024


def test_token_lifetime_cap_and_jwt_leeway_come_from_the_environment():
    s = Settings.from_env({})
    assert (s.token_max_ttl_s, s.clock_leeway_s) == (30 * 86_400, 30)
    assert s.flask_config()["JWT_DECODE_LEEWAY"] == 30
    s = Settings.from_env({"TOKEN_MAX_TTL_S": "3600", "CLOCK_LEEWAY_S": "5"})
    assert (s.token_max_ttl_s, s.flask_config()["JWT_DECODE_LEEWAY"]) == (3600, 5)


def test_a_non_integer_setting_is_refused_with_its_name():
    with pytest.raises(ValueError, match="PORT"):
        Settings.from_env({"PORT": "eighty"})


def test_resource_alert_thresholds_are_fractions():
    s = Settings.from_env({"ALERT_CPU": "0.7", "ALERT_DISK": "1"})
    assert (s.alert_cpu, s.alert_memory, s.alert_disk, s.alert_network) == (0.7, 0.85, 1.0, 0.8)
    for bad in ("80", "-0.1", "high", "nan"):
        with pytest.raises(ValueError, match="ALERT_MEMORY"):
            Settings.from_env({"ALERT_MEMORY": bad})


def test_the_secret_never_shows_in_repr():
    assert "hunter2" not in repr(Settings.from_env({"JWT_SECRET_KEY": "hunter2" * 6}))


def test_every_variable_is_documented_in_env_example():
    from tests.conftest import ROOT

    documented = (ROOT / ".env.example").read_text()
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET_KEY",
        "PORT",
        "PUBLIC_URL",
        "MAX_BODY_BYTES",
        "TOKEN_TTL_S",
        "CLIENT_SUBMITS_PER_S",
        "CLIENT_BURST",
        "CLIENT_MAX_UNFINISHED",
        "TOKEN_MAX_TTL_S",
        "CLOCK_LEEWAY_S",
        "CONNECT_TIMEOUT_S",
        "BACKEND_MAX_RESPONSE_BYTES",
        "BACKEND_MAX_EVENT_BYTES",
        "HOT_STATE_TTL_S",
        "WORKER_CONCURRENCY",
        "LOG_JSON",
        "ALERT_CPU",
        "ALERT_MEMORY",
        "ALERT_DISK",
        "ALERT_NETWORK",
        "EVENTS_KEEPALIVE_S",
        "FAIR_SHARE",
        "MAX_WAITING_PROFILES",
        "WEB_CONNECTIONS",
        "METRICS_MAX_AGE_S",
        "METRICS_TOKEN",
        "RETENTION_DAYS",
        "REDIS_MAXMEMORY",
        "FLOWER_ADDRESS",
        "FLOWER_BASIC_AUTH",
    ):
        assert f"\n{name}=" in documented, name


def test_the_secret_generated_by_taskfleet_up_is_found_by_the_cli(tmp_path):
    (tmp_path / "jwt_secret").write_text("generated-" + "s" * 40 + "\n")
    assert Settings.from_env({"TASKFLEET_HOME": str(tmp_path)}).jwt_secret_key == "generated-" + "s" * 40
    explicit = {"TASKFLEET_HOME": str(tmp_path), "JWT_SECRET_KEY": "explicit-" + "e" * 40}
    assert Settings.from_env(explicit).jwt_secret_key == "explicit-" + "e" * 40


@pytest.mark.parametrize("secret", ["", "short"])
def test_without_a_real_secret_nothing_starts(secret):
    from app import create_app

    with pytest.raises(RuntimeError, match="JWT_SECRET_KEY"):
        create_app(Settings(jwt_secret_key=secret))


def test_the_events_keep_alive_is_a_positive_number_of_seconds():
    assert Settings.from_env({"EVENTS_KEEPALIVE_S": "0.5"}).events_keepalive_s == 0.5
    assert Settings.from_env({}).events_keepalive_s == 15.0
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValueError, match="EVENTS_KEEPALIVE_S"):
            Settings.from_env({"EVENTS_KEEPALIVE_S": bad})


def test_client_limits_come_from_the_environment_and_must_be_positive():
    settings = Settings.from_env(
        {"CLIENT_SUBMITS_PER_S": "2.5", "CLIENT_BURST": "10", "CLIENT_MAX_UNFINISHED": "7"}
    )
    assert (settings.client_submits_per_s, settings.client_burst, settings.client_max_unfinished) == (
        2.5,
        10,
        7,
    )
    for name, bad in (("CLIENT_SUBMITS_PER_S", "0"), ("CLIENT_SUBMITS_PER_S", "inf"), ("CLIENT_BURST", "0")):
        with pytest.raises(ValueError, match=name):
            Settings.from_env({name: bad})


def test_fair_sharing_is_on_unless_turned_off_and_the_profile_cap_is_read():
    assert Settings.from_env({}).fair_share is True
    assert Settings.from_env({}).max_waiting_profiles == 10_000
    for off in ("off", "OFF", "0", "false", "no"):
        assert Settings.from_env({"FAIR_SHARE": off}).fair_share is False
    assert Settings.from_env({"FAIR_SHARE": "on"}).fair_share is True
    assert Settings.from_env({"MAX_WAITING_PROFILES": "500"}).max_waiting_profiles == 500


def test_callback_signatures_are_optional_unless_required_and_nothing_else_is_taken():
    assert Settings.from_env({}).callback_signature == "optional"
    assert Settings.from_env({"CALLBACK_SIGNATURE": "Required"}).callback_signature == "required"
    with pytest.raises(ValueError, match="CALLBACK_SIGNATURE must be one of required, optional"):
        Settings.from_env({"CALLBACK_SIGNATURE": "always"})


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example/alert",
        "hooks.example/alert",
        "http://169.254.169.254/latest",
        "http://[64:ff9b::a9fe:a9fe]/x",
        "http://metadata.google.internal/x",
        "http://168.63.129.16/",
        "http://hooks.example/a b",
    ],
)
def test_an_alert_webhook_url_a_backend_could_not_have_is_refused_at_startup(url):
    with pytest.raises(ValueError, match="ALERT_WEBHOOK_URL"):
        Settings.from_env({"ALERT_WEBHOOK_URL": url})


def test_an_http_alert_webhook_url_is_taken():
    url = "https://hooks.example.com/services/T0/B0/x"
    assert Settings.from_env({"ALERT_WEBHOOK_URL": url}).alert_webhook_url == url


def test_backend_answer_caps_default_to_16_and_1_mib_and_must_be_positive():
    settings = Settings.from_env({})
    assert (settings.backend_max_response_bytes, settings.backend_max_event_bytes) == (16 << 20, 1 << 20)
    assert Settings.from_env({"BACKEND_MAX_RESPONSE_BYTES": "1000"}).backend_max_response_bytes == 1000
    with pytest.raises(ValueError, match="BACKEND_MAX_EVENT_BYTES"):
        Settings.from_env({"BACKEND_MAX_EVENT_BYTES": "0"})


def test_log_level_is_one_of_four_names():
    assert Settings.from_env({}).log_level == "info"
    assert Settings.from_env({"LOG_LEVEL": "DEBUG"}).log_level == "debug"
    with pytest.raises(ValueError, match="LOG_LEVEL must be one of debug, info, warning, error"):
        Settings.from_env({"LOG_LEVEL": "verbose"})
