"""The spec's JSON and what Redis keeps of it: large payloads stay in the database."""

import json

from app.core.task import HOT_PAYLOAD_MAX_BYTES, TaskSpec, json_size


def payload_of_size(n: int) -> dict:
    base = {"blob": ""}
    return {"blob": "x" * (n - json_size(base))}


def test_json_size_is_compact_utf8():
    assert json_size({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert json_size("é") == len('"é"'.encode())
    assert json_size("\ud800") == 5  # a lone surrogate from JSON input is sized, not an error


def test_a_payload_up_to_64_kib_stays_in_the_hot_spec():
    spec = TaskSpec(type="t", payload=payload_of_size(HOT_PAYLOAD_MAX_BYTES))
    assert spec.for_hot_state() is spec
    assert TaskSpec(type="t").for_hot_state().payload_in_db is False


def test_a_larger_payload_is_left_out_with_a_marker_and_comes_back():
    payload = payload_of_size(HOT_PAYLOAD_MAX_BYTES + 1)
    spec = TaskSpec(type="t", payload=payload, metadata={"m": 1})
    hot = spec.for_hot_state()
    assert hot.payload is None and hot.payload_in_db
    assert hot.for_hot_state() is hot
    data = hot.to_json()
    assert data["payload"] is None and data["payload_in_db"] is True
    assert len(json.dumps(data)) < 1000
    assert TaskSpec.from_json(data) == hot
    assert hot.with_payload(payload) == spec


def test_a_spec_with_its_payload_has_no_marker_in_its_json():
    data = TaskSpec(type="t", payload={"a": 1}).to_json()
    assert "payload_in_db" not in data
    assert TaskSpec.from_json(data).payload_in_db is False
