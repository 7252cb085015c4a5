"""Channels between workflows: subscribe, receive, publish, send_to.

Modes: **broadcast** (every subscriber receives every message published after
it subscribed, in order), **competing** (each message goes to exactly one
subscriber; messages wait in the queue until one takes them) and **direct**
(a mailbox per instance: ``send_to`` reaches it, and it receives everything sent
to it since the instance started).

Inside a workflow every one of these calls is journaled: a replay neither
subscribes, publishes nor receives twice. A message is stored before anyone is
woken; lost wake-ups are found by the recovery sweep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edda.journal.channels import (
    Audience,
    ChannelModeConflictError,
    Consume,
    PublishDurably,
    StoredMessage,
    StoreMessage,
    Subscribe,
    TakeCompeting,
    Unsubscribe,
    new_message_id,
    received,
)
from edda.journal.entries import MessagePublished, MessageReceived, Subscribed, Unsubscribed
from edda.runtime.context import WorkflowContext, require_context
from edda.runtime.serialization import to_jsonable
from edda.runtime.timers import check_seconds
from edda.runtime.waits import Delivery, durable_wait, resolution

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from edda.journal.entries import CallEntry
    from edda.runtime.app import EddaApp

MODES = ("broadcast", "competing", "direct")

__all__ = ["ChannelMessage", "ChannelModeConflictError", "ChannelNotSubscribedError", "publish",
           "receive", "send_to", "subscribe", "unsubscribe"]


class ChannelNotSubscribedError(ValueError):
    """``receive`` on a channel the workflow has not subscribed to."""


@dataclass(frozen=True)
class ChannelMessage:
    """A message as `receive` returns it."""

    id: str
    channel: str
    data: dict[str, Any] | bytes | Any
    metadata: dict[str, Any] = field(default_factory=dict)
    published_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _check_channel(channel: object) -> str:
    if not isinstance(channel, str):
        raise TypeError(f"channel must be a string, got {type(channel).__name__}")
    if not channel.strip():
        raise ValueError("channel must be a non-empty string")
    return channel


def _payload(data: object, what: str) -> tuple[Any, bytes | None]:
    if isinstance(data, bytes | bytearray):
        return None, bytes(data)
    return to_jsonable(data, what=what), None


def check_payload(channel: str, data: object, metadata: dict[str, Any] | None
                  ) -> tuple[Any, bytes | None, dict[str, Any]]:
    """Validate a message: (JSON data or None, raw bytes or None, JSON metadata).

    Raises:
        TypeError: If data or metadata cannot be stored.
        ValueError: For an empty channel name.
    """
    _check_channel(channel)
    payload, raw = _payload(data, f"data published on channel {channel!r}")
    meta = to_jsonable(dict(metadata or {}), what="message metadata")
    assert isinstance(meta, dict)
    return payload, raw, meta


# -- subscriptions ----------------------------------------------------------------

def subscribe(ctx: WorkflowContext, channel: str, mode: str = "broadcast"
              ) -> Coroutine[Any, Any, None]:
    """Subscribe the workflow to ``channel`` (journaled; a replay does not repeat it).

    Raises:
        ValueError: For an unknown mode or an empty channel name.
        ChannelModeConflictError: If the channel has subscribers in another mode.
    """
    require_context(ctx, "subscribe")
    _check_channel(channel)
    if mode not in MODES:
        raise ValueError(f"Invalid subscription mode: {mode}. Must be 'broadcast', "
                         "'competing', or 'direct'")
    position, call = ctx._reserve("subscribe", None)
    return _subscribe(ctx, position, call, channel, mode)


async def _subscribe(ctx: WorkflowContext, position: str, call: int, channel: str,
                     mode: str) -> None:
    entries = ctx._recorded(position, call, f"subscribe {channel!r}")
    if entries is not None:
        entry = entries[-1]
        assert isinstance(entry, Subscribed)
        ctx._subscriptions[channel] = (entry.mode, entry.address, entry.since)
        return
    address = f"{channel}:{ctx.instance_id}" if mode == "direct" else channel
    current = ctx._subscriptions.get(channel)
    # Subscribing again keeps the original start, so nothing in between is missed.
    if current is not None and current[0] == mode:
        since = current[2]
    else:
        # A direct mailbox holds what was sent to the instance's address even before
        # the instance existed: the address is its id, known in advance.
        since = 0.0 if mode == "direct" else ctx._run.clock.now()
    entry = Subscribed(position=position, call=call, channel=channel, mode=mode,
                       address=address, since=since)
    await ctx._run.journal.append(
        entry, effects=(Subscribe(ctx.instance_id, channel, address, mode, since),))
    ctx._subscriptions[channel] = (mode, address, since)


def unsubscribe(ctx: WorkflowContext, channel: str) -> Coroutine[Any, Any, None]:
    """Leave ``channel``; competing messages claimed but not received go back to the queue."""
    require_context(ctx, "unsubscribe")
    _check_channel(channel)
    position, call = ctx._reserve("unsubscribe", None)
    return _unsubscribe(ctx, position, call, channel)


async def _unsubscribe(ctx: WorkflowContext, position: str, call: int, channel: str) -> None:
    if ctx._recorded(position, call, f"unsubscribe {channel!r}") is None:
        await ctx._run.journal.append(
            Unsubscribed(position=position, call=call, channel=channel),
            effects=(Unsubscribe(ctx.instance_id, channel),))
    ctx._subscriptions.pop(channel, None)


# -- receiving --------------------------------------------------------------------

def receive(ctx: WorkflowContext, channel: str, timeout_seconds: float | None = None,
            message_id: str | None = None) -> Coroutine[Any, Any, ChannelMessage]:
    """The next message on a subscribed channel; waits durably until one comes.

    Raises:
        ChannelNotSubscribedError: If the workflow has not subscribed to ``channel``.
        TimeoutError: If ``timeout_seconds`` pass first.
    """
    require_context(ctx, "receive")
    _check_channel(channel)
    timeout = None if timeout_seconds is None else check_seconds(timeout_seconds,
                                                                 "timeout_seconds")
    position, call = ctx._reserve(f"receive_{channel}", message_id)
    return _receive(ctx, position, call, channel, timeout)


async def _receive(ctx: WorkflowContext, position: str, call: int, channel: str,
                   timeout: float | None) -> ChannelMessage:
    run = ctx._run
    subscription = ctx._subscriptions.get(channel)
    recorded = run.index.by_call.get(call)
    if subscription is None and recorded is None:
        raise ChannelNotSubscribedError(
            f"workflow {ctx.workflow_name!r} is not subscribed to channel {channel!r}; "
            f"call 'await subscribe(ctx, {channel!r}, mode=...)' before receive()")
    mode, address, since = subscription or ("broadcast", channel, 0.0)
    iid = ctx.instance_id

    def delivery(message: StoredMessage) -> Delivery:
        return Delivery(
            lambda pos, n: received(message, pos, n, channel),
            # A direct message has no other receiver: it goes at once.
            (Consume(iid, message.row_id, only_receiver=mode != "broadcast"),))

    async def poll() -> Delivery | None:
        found = await run.stores.channels.next_broadcast(address, iid, since)
        return None if found is None else delivery(found)

    async def take(pos: str, n: int, waiting: bool) -> CallEntry | None:
        # Competing: claim the message and journal its receipt in one transaction.
        change, effects = resolution(run, pos, (), waiting=waiting)
        taken = await run.journal.take(TakeCompeting(
            instance_id=iid, address=address, channel=channel, position=pos, call=n,
            change=change, effects=effects))
        if taken is None:
            return None
        assert isinstance(taken.entry, MessageReceived)
        if taken.result is not None:  # more in the queue: hand it on to another receiver
            run.host.spawn(run.host.notify(taken.result))
        return taken.entry

    entry, _live = await durable_wait(
        ctx, position, call, operation=f"receive {channel!r}", wait_type="channel",
        key=address, deadline=lambda now: None if timeout is None else now + timeout,
        status="waiting_for_message",
        poll=None if mode == "competing" else poll,
        take=take if mode == "competing" else None,
    )
    if not isinstance(entry, MessageReceived):
        raise TimeoutError(f"Message on channel '{channel}' did not arrive within timeout")
    return ChannelMessage(
        id=entry.message_id, channel=channel,
        data=entry.data_bytes if entry.data_bytes is not None else entry.data,
        metadata=dict(entry.metadata),
        published_at=datetime.fromtimestamp(entry.published_at, UTC))


# -- publishing -------------------------------------------------------------------

async def wake_receivers(notify: Any, audience: Audience, target: str | None) -> None:
    """Wake whoever waits for a new message: every broadcast receiver, one competing one."""
    waiting = audience.waiting
    if target is not None:
        waiting = [i for i in waiting if i == target]
    elif "competing" in audience.modes and waiting:
        waiting = [random.choice(waiting)]
    for instance_id in waiting:
        await notify(instance_id)


def publish(ctx_or_app: WorkflowContext | EddaApp, channel: str, data: dict[str, Any] | bytes,
            metadata: dict[str, Any] | None = None, *, target_instance_id: str | None = None
            ) -> Coroutine[Any, Any, str]:
    """Publish a message; returns its id. Journaled when called in a workflow.

    Raises:
        TypeError: If ``data`` is neither bytes nor JSON-compatible.
        ValueError: For an empty channel name.
    """
    payload, raw, extra = check_payload(channel, data, metadata)
    if isinstance(ctx_or_app, WorkflowContext):
        ctx = ctx_or_app
        position, call = ctx._reserve("publish", None)
        return _publish_durably(ctx, position, call, channel, channel, payload, raw, extra,
                                target_instance_id)
    return ctx_or_app.publish(channel, data, metadata, target_instance_id=target_instance_id)


def send_to(ctx: WorkflowContext, instance_id: str, data: dict[str, Any] | bytes,
            channel: str = "__direct__", metadata: dict[str, Any] | None = None
            ) -> Coroutine[Any, Any, bool]:
    """Send to one instance's direct mailbox (``subscribe(ctx, channel, mode="direct")``).

    Returns:
        Whether the receiver subscribes to that mailbox (the message is kept either
        way and reaches it once it does).
    """
    require_context(ctx, "send_to")
    _check_channel(channel)
    if not isinstance(instance_id, str) or not instance_id:
        raise ValueError("instance_id must be a non-empty string")
    payload, raw, extra = check_payload(channel, data, metadata)
    position, call = ctx._reserve("send_to", None)

    async def run() -> bool:
        subscribed = await _publish_durably(ctx, position, call, channel,
                                            f"{channel}:{instance_id}", payload, raw, extra,
                                            instance_id, direct=True)
        return bool(subscribed)

    return run()


async def _publish_durably(ctx: WorkflowContext, position: str, call: int, channel: str,
                           address: str, payload: Any, raw: bytes | None,
                           metadata: dict[str, Any], target: str | None,
                           direct: bool = False) -> Any:
    operation = "send_to" if direct else f"publish {channel!r}"
    entries = ctx._recorded(position, call, operation)
    if entries is not None:
        entry = entries[-1]
        assert isinstance(entry, MessagePublished)
        return entry.receiver_subscribed if direct else entry.message_id
    run = ctx._run
    message_id = new_message_id()
    now = datetime.now(UTC).isoformat()
    meta = {**metadata, "published_at": now, "source_instance_id": ctx.instance_id}
    if direct:
        meta["sent_at"] = now
    # send_to's answer is journaled: read in the transaction that stores the message.
    taken = await run.journal.take(PublishDurably(
        instance_id=ctx.instance_id,
        store=StoreMessage(message_id, address, payload, raw, meta, target),
        position=position, call=call, direct=direct))
    assert taken is not None and isinstance(taken.entry, MessagePublished)
    await wake_receivers(run.host.notify, taken.result, target)
    return taken.entry.receiver_subscribed if direct else message_id
