import pytest

from app.core.text import MAX_REPORTED, unstorable_fields, unstorable_reason


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "é",
        "\U0001f600",
        "\ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16"),
        "\x01\x7f",
    ],
)
def test_text_that_encodes_to_utf8_without_nul_is_storable(text):
    assert unstorable_reason(text) is None


@pytest.mark.parametrize("text", ["\x00", "a\x00b", "\ud800", "x\udfff", "\udbff\ud800"[1:], "\udc00\ud800"])
def test_nul_and_lone_surrogates_are_not(text):
    assert unstorable_reason(text) is not None


def test_paths_name_every_bad_string_and_key_at_any_depth():
    found = unstorable_fields(
        {"type": "ok", "payload": {"a": [1, {"b": "\ud800"}], "k\x00": 1, "a b": "\x00"}, "\udfff": 2}
    )
    assert set(found) == {"payload.a[1].b", 'payload["k\\u0000"]', 'payload["a b"]', '"\\udfff"'}
    assert found['payload["k\\u0000"]'].startswith("key ")


def test_deep_nesting_is_walked_without_recursion():
    value: object = "\ud800"
    for _ in range(50_000):
        value = [value]
    assert list(unstorable_fields({"p": value})) == ["p" + "[0]" * 50_000]


def test_reports_are_bounded():
    assert len(unstorable_fields({"p": ["\x00"] * 1000})) == MAX_REPORTED


def test_text_that_only_looks_like_an_escape_is_storable():
    assert unstorable_fields({"a": "\\u0000", "b": "\\ud800", "c": {1: "x"}}) == {}


def test_a_large_clean_body_is_looked_at_in_one_pass():
    """The walk with paths runs only when the whole, written as JSON, holds a bad one."""
    body = {"items": [{"id": i, "label": "x" * 8} for i in range(50_000)]}
    assert unstorable_fields(body) == {}
    body["items"][-1]["label"] = "\ud800"
    assert list(unstorable_fields(body)) == ["items[49999].label"]
