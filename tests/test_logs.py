"""Log lines: plain text with control characters escaped, or JSON."""

import io
import logging

import pytest

from app.logs import PlainFormatter, escape_controls


@pytest.mark.parametrize(
    "text, shown",
    [
        ("plain é ü 😀", "plain é ü 😀"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("x\u2028y\x85z", "x\\u2028y\\x85z"),
        ("nul\x00", "nul\\x00"),
        ("lone\ud800", "lone\\ud800"),
    ],
)
def test_control_characters_are_escaped(text, shown):
    assert escape_controls(text) == shown


def test_a_record_is_one_line_and_its_traceback_keeps_its_lines():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(PlainFormatter())
    logger = logging.getLogger("taskfleet.test_logs")
    logger.addHandler(handler)
    try:
        logger.warning("alert %s: %s", "no_server", "x\nFORGED LINE")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed on %s", "a\nb")
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("alert no_server: x\\nFORGED LINE")
    assert lines[1].endswith("failed on a\\nb")
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"
