"""Actor addresses: the transport subjects that reach an instance's actor."""

from __future__ import annotations

#: Subscription pattern of a node for wake-ups of any instance.
WAKE_PATTERN = "edda.instance.*.wake"


def wake_subject(instance_id: str) -> str:
    """The subject that asks whoever owns ``instance_id`` to run it now.

    Raises:
        ValueError: If the id cannot be a subject token (dots or whitespace).
    """
    if not instance_id or "." in instance_id or any(c.isspace() for c in instance_id):
        raise ValueError(f"instance id {instance_id!r} cannot be addressed (dot or blank)")
    return f"edda.instance.{instance_id}.wake"


def instance_of(subject: str) -> str:
    """The instance id named by a wake subject."""
    return subject.split(".")[2]
