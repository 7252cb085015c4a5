"""NATS-style subject names and wildcard matching.

Subjects are dot-separated tokens. In a subscription pattern ``*`` matches exactly
one token and ``>`` (last token only) matches one or more. The in-process
transport uses the same rules as nats-server, so code tested against it behaves
the same in a cluster.
"""

from __future__ import annotations


def validate_subject(subject: str, *, pattern: bool = False) -> list[str]:
    """Split a subject into tokens, rejecting malformed ones.

    Args:
        subject: The subject or, with ``pattern=True``, a subscription pattern.
        pattern: Whether wildcards are allowed.

    Returns:
        The subject's tokens.

    Raises:
        ValueError: If the subject is empty, has an empty token or whitespace, or
            uses a wildcard where none is allowed.
    """
    if not isinstance(subject, str) or not subject:
        raise ValueError(f"subject must be a non-empty string, got {subject!r}")
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"subject {subject!r} has an empty or blank token")
        if token in ("*", ">"):
            if not pattern:
                raise ValueError(f"subject {subject!r} may not contain wildcards when publishing")
            if token == ">" and i != len(tokens) - 1:
                raise ValueError(f"'>' must be the last token of pattern {subject!r}")
    return tokens


def matches(pattern_tokens: list[str], subject_tokens: list[str]) -> bool:
    """Whether a subject matches a subscription pattern (both already split)."""
    for i, token in enumerate(pattern_tokens):
        if token == ">":
            return len(subject_tokens) > i
        if i >= len(subject_tokens):
            return False
        if token != "*" and token != subject_tokens[i]:
            return False
    return len(subject_tokens) == len(pattern_tokens)
