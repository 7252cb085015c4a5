"""Edda's ``edda.channels`` module."""

from edda.runtime.channels import ChannelMessage as ChannelMessage
from edda.runtime.channels import ChannelModeConflictError as ChannelModeConflictError
from edda.runtime.channels import ChannelNotSubscribedError as ChannelNotSubscribedError
from edda.runtime.channels import publish as publish
from edda.runtime.channels import receive as receive
from edda.runtime.channels import send_to as send_to
from edda.runtime.channels import subscribe as subscribe
from edda.runtime.channels import unsubscribe as unsubscribe

__all__ = (
    "ChannelMessage",
    "ChannelModeConflictError",
    "ChannelNotSubscribedError",
    "publish",
    "receive",
    "send_to",
    "subscribe",
    "unsubscribe",
)
