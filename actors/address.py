"""Actor addresses: the transport subjects that reach an instance's actor."""

from __future__ import annotations

#: Subscription pattern of a node for wake-ups of any instance.
WAKE_PATTERN = "edda.instance.*.wake"
#: Subscription pattern of a node for everything addressed to any instance.
INSTANCE_PATTERN = "edda.instance.*.*"


def _address(instance_id: str, kind: str) -> str:
    if not instance_id or "." in instance_id or any(c.isspace() for c in instance_id):
        raise ValueError(f"instance id {instance_id!r} cannot be addressed (dot or blank)")
    return f"edda.instance.{instance_id}.{kind}"


def wake_subject(instance_id: str) -> str:
    """The subject that asks whoever owns ``instance_id`` to run it now (something
    it may wait for was committed).

    Raises:
        ValueError: If the id cannot be a subject token (dots or whitespace).
    """
    return _address(instance_id, "wake")


def cancel_subject(instance_id: str) -> str:
    """The subject that tells whoever owns ``instance_id`` that a cancel of it was
    committed."""
    return _address(instance_id, "cancel")


def instance_of(subject: str) -> str:
    """The instance id named by an instance subject."""
    return subject.split(".")[2]


def kind_of(subject: str) -> str:
    """What an instance subject says: ``wake`` or ``cancel``."""
    return subject.rsplit(".", 1)[1]
