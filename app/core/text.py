"""Text taskfleet can store: Unicode that encodes to UTF-8, without NUL.

JSON can spell two things no store takes: a lone UTF-16 surrogate (``"\\ud800"``, which
has no UTF-8 form, so the Redis and database drivers fail to encode it) and NUL
(``"\\u0000"``, which Postgres refuses in text and JSONB). Input holding either, in any
string at any depth (a value or an object key), is refused where it enters, naming the
path of every such string."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: A NUL or a UTF-16 surrogate code point. The JSON parser decodes a surrogate pair
#: into one character, so a surrogate left in a ``str`` is a lone one.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: What ``json.dumps(..., ensure_ascii=False)`` writes for such a character: NUL as its
#: escape, a surrogate as itself. (A literal backslash-u-0000 also matches: the walk
#: then finds nothing.)
_UNSTORABLE_DUMPED = re.compile("\\\\u0000|[\ud800-\udfff]")
#: Paths reported at most: enough to fix a body, a bound on the answer's size.
MAX_REPORTED = 20
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def unstorable_reason(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL (U+0000)"
    return "must not contain a lone UTF-16 surrogate (U+D800..U+DFFF)"


def _name(key: str) -> str:
    """A key as a path step; ASCII-escaped JSON when it is no plain name, so that a path
    naming a bad key is itself printable."""
    return key if _IDENTIFIER.match(key) else json.dumps(key)


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key)}]"


def unstorable_fields(fields: Mapping[Any, Any]) -> dict[str, str]:
    """Path -> reason for every string (value or object key, at any depth) in
    ``fields`` that cannot be stored, at most ``MAX_REPORTED``. Paths start with the
    field's name: ``type``, ``payload.a[0]``, ``tasks[2].key``, ``metadata["k\\u0000"]``.
    Iterative, so any depth the JSON parser accepted is walked; and only when a look at
    the whole as JSON text (in C, fast) found such a character."""
    try:
        dumped = json.dumps(fields, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        dumped = None  # keys JSON cannot have, or nested past the encoder: walk
    if dumped is not None and _UNSTORABLE_DUMPED.search(dumped) is None:
        return {}
    found: dict[str, str] = {}
    stack: list[tuple[str, Any]] = []
    for key, value in reversed(list(fields.items())):
        if isinstance(key, str) and (reason := unstorable_reason(key)) is not None:
            found[_name(key)] = "name " + reason
        else:
            stack.append((_name(str(key)), value))
    while stack and len(found) < MAX_REPORTED:
        path, item = stack.pop()
        if isinstance(item, str):
            if (reason := unstorable_reason(item)) is not None:
                found[path] = reason
        elif isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                child_path = _child(path, str(key))
                if isinstance(key, str) and (reason := unstorable_reason(key)) is not None:
                    found[child_path] = "key " + reason
                else:
                    stack.append((child_path, child))
        elif isinstance(item, list | tuple):
            stack.extend((_child(path, i), child) for i, child in reversed(list(enumerate(item))))
    return dict(list(found.items())[:MAX_REPORTED])
