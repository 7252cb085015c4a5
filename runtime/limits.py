"""Limits checked before the database sees a value.

Both databases must answer bad input the same way, with a clear error and
nothing changed: PostgreSQL refuses a NUL character in text and a key longer
than its column, where SQLite would store either. So the checks happen here,
at the edge of the runtime, for every key that becomes a column (instance ids,
event types, sources, channels), and for the nesting depth of JSON bodies.
"""

from __future__ import annotations

#: The longest key a column holds (instance ids, event types, channel names).
MAX_KEY = 255
#: The deepest nesting of arrays and objects a JSON body may have.
MAX_JSON_DEPTH = 64


def check_key(value: object, what: str, *, limit: int = MAX_KEY) -> str:
    """``value`` as a key that every database stores alike.

    Raises:
        ValueError: If it is not a non-empty string of at most ``limit``
            characters free of NUL and other control characters.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {_show(value)}")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters long; the limit is {limit}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} {_show(value)} contains a control character (such as NUL); "
                         "use printable characters only")
    return value


def check_text(value: str, what: str) -> str:
    """``value`` as free text a database column or JSON comparison may hold: any
    length and character but NUL, which PostgreSQL's text cannot hold.

    Raises:
        ValueError: If it contains a NUL character.
    """
    if "\x00" in value:
        raise ValueError(f"{what} {_show(value)} contains a NUL character")
    return value


def check_json_depth(body: bytes, *, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a JSON text nested deeper than ``limit`` before it is parsed.

    Raises:
        ValueError: If arrays and objects nest deeper than ``limit``.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                raise ValueError(f"the JSON body nests deeper than {limit} levels; "
                                 "flatten the data")
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
