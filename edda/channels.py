"""Edda's ``edda.channels`` module."""

from edda.runtime.channels import ChannelMessage as ChannelMessage
from edda.runtime.channels import ChannelModeConflictError as ChannelModeConflictError
from edda.runtime.channels import ChannelNotSubscribedError as ChannelNotSubscribedError
from edda.runtime.channels import publish as publish
from edda.runtime.channels import receive as receive
from edda.runtime.channels import send_to as send_to
from edda.runtime.channels import subscribe as subscribe
from edda.runtime.channels import unsubscribe as unsubscribe
from edda.runtime.events import EventTimeoutError as EventTimeoutError
from edda.runtime.events import ReceivedEvent as ReceivedEvent
from edda.runtime.events import wait_event as wait_event
from edda.runtime.timers import sleep as sleep
from edda.runtime.timers import sleep_until as sleep_until

__all__ = (
    "ChannelMessage",
    "ChannelModeConflictError",
    "ChannelNotSubscribedError",
    "EventTimeoutError",
    "ReceivedEvent",
    "publish",
    "receive",
    "send_to",
    "sleep",
    "sleep_until",
    "subscribe",
    "unsubscribe",
    "wait_event",
)
