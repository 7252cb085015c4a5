"""Edda's ``edda.outbox.transactional`` module."""

from edda.runtime.outbox import send_event_transactional

__all__ = ["send_event_transactional"]
