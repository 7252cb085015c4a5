"""Edda's ``edda.activity`` module: the activity wrapper."""

from edda.runtime.activity import Activity as Activity
from edda.runtime.activity import activity as activity

__all__ = ("Activity", "activity")
