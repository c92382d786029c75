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
