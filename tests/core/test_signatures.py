import pytest

from app.core import signatures
from app.core.errors import Unauthorized

BODY = b'{"status": "COMPLETED", "result": 1}'


def test_a_signature_over_the_body_and_time_is_accepted_within_300_s():
    header = signatures.sign("key", 1_000, BODY)
    signatures.verify(header, "key", BODY, 1_300)
    signatures.verify(header, "key", BODY, 700)


@pytest.mark.parametrize(
    ("header", "secret", "body", "now", "why"),
    [
        (signatures.sign("key", 1_000, BODY), "key", BODY, 1_301, "away from now"),
        (signatures.sign("key", 1_000, BODY), "key", BODY + b" ", 1_000, "does not match"),
        (signatures.sign("other", 1_000, BODY), "key", BODY, 1_000, "does not match"),
        (
            signatures.sign("key", 1_000, BODY).replace("t=1000", "t=1001"),
            "key",
            BODY,
            1_000,
            "does not match",
        ),
        ("v1=abc", "key", BODY, 1_000, "must look like"),
        ("t=soon,v1=abc", "key", BODY, 1_000, "must look like"),
        (signatures.sign("key", 1_000, BODY), None, BODY, 1_000, "without an apiKey"),
    ],
)
def test_anything_else_is_refused(header, secret, body, now, why):
    with pytest.raises(Unauthorized, match=why):
        signatures.verify(header, secret, body, now)


@pytest.mark.parametrize(
    "header",
    [
        "t=1000,v1=\u00e9\u00e9",  # what a Latin-1 byte in a real header decodes to
        "t=1000,v1=" + "\u00e9" * 64,
        "t=\u0661\u0660\u0660\u0660,v1=" + "0" * 64,  # Arabic-Indic digits, which int() takes
        "t=1_000,v1=" + "0" * 64,
        "t= 1000,v1=" + "0" * 64,
        "t=1000,v1=" + "0" * 63,
        "t=1000,v1=" + "0" * 64 + "\u2603",
        "",
    ],
)
def test_a_malformed_or_non_ascii_header_is_refused_not_an_error(header):
    with pytest.raises(Unauthorized, match="must look like"):
        signatures.verify(header, "key", BODY, 1_000)


@pytest.mark.parametrize(
    ("server_mode", "default_mode", "has_api_key", "required"),
    [
        (None, "optional", True, False),
        (None, "required", True, True),
        (None, "required", False, False),  # nothing to sign with: the URL token alone
        ("required", "optional", True, True),
        ("optional", "required", True, False),  # the server's own choice wins
    ],
)
def test_a_server_demands_signatures_by_its_own_setting_else_the_deployments(
    server_mode, default_mode, has_api_key, required
):
    assert signatures.is_required(server_mode, default_mode, has_api_key) is required
