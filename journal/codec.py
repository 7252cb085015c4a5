"""Encoding of journal entries: one encoder and one decoder, built once."""

from __future__ import annotations

import msgspec

from edda.journal.entries import Entry

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Entry] = msgspec.json.Decoder(Entry)
_any_decoder = msgspec.json.Decoder()


def encode_entry(entry: Entry) -> bytes:
    """JSON bytes of an entry, tag included."""
    return _encoder.encode(entry)


def decode_entry(data: bytes | str) -> Entry:
    """An entry from its stored JSON.

    Raises:
        msgspec.ValidationError: If the row is not a known entry.
    """
    return _decoder.decode(data)


def encode_json(value: object) -> str:
    """Compact JSON text for the JSON columns of the projection tables."""
    return _encoder.encode(value).decode()


def decode_json(data: bytes | str | None) -> object:
    """The value of a JSON column (``None`` stays ``None``)."""
    if data is None:
        return None
    return _any_decoder.decode(data)
