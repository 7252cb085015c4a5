"""Edda's ``edda.outbox.relayer`` module."""

from edda.runtime.relayer import OutboxRelayer

__all__ = ["OutboxRelayer"]
