"""Ids that sort in the order they were made: UUIDv7 (RFC 9562), so the tasks of a job
listed by id come back in the order of the job's items."""

from __future__ import annotations

import secrets
import uuid

#: Items one call can number: 12 bits of ``rand_a`` and 12 of ``rand_b`` hold the index.
MAX_ORDERED = 1 << 24


def ordered_ids(now_ms: int, count: int) -> list[str]:
    """``count`` UUIDv7 strings for ``now_ms`` that sort (as text, too) in index order:
    the index fills the 12 bits of ``rand_a`` and the top 12 of ``rand_b``, the other 50
    bits are random."""
    if not 0 <= count <= MAX_ORDERED:
        raise ValueError(f"count must be 0..{MAX_ORDERED}")
    millis = (now_ms & ((1 << 48) - 1)) << 80
    ids = []
    for index in range(count):
        rand_a = index >> 12
        rand_b = ((index & 0xFFF) << 50) | secrets.randbits(50)
        value = millis | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
        ids.append(str(uuid.UUID(int=value)))
    return ids
