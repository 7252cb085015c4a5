"""The transactional outbox (Edda's ``edda.outbox`` package)."""

from edda.runtime.outbox import send_event_transactional
from edda.runtime.relayer import OutboxRelayer

__all__ = ["OutboxRelayer", "send_event_transactional"]
