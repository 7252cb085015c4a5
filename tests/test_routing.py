"""Routing mail to the owner of an instance's partition: batched per partition,
heard by the owner only, served locally without the transport, and following
the placement as partitions move."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edda import EddaApp
from edda.actors.address import Addresses, InstanceMail, decode_mail, encode_mail
from edda.journal.partitions import DEFAULT_PARTITIONS, partition_of
from edda.runtime.node import Node
from edda.transports import InProcTransport
from tests.support.cluster import ids_in, owned
from tests.support.gates import wait_until

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]


async def two_nodes(sqlite_url: str, make_app: MakeApp) -> tuple[EddaApp, EddaApp]:
    shared = InProcTransport()
    a = make_app(sqlite_url, transport=shared, recovery_interval=60.0)
    await a.initialize()
    b = make_app(sqlite_url, transport=shared, recovery_interval=60.0)
    await b.initialize()
    await wait_until(lambda: bool(owned(b)) and not owned(a) & owned(b)
                     and len(owned(a) | owned(b)) == DEFAULT_PARTITIONS,
                     "the two nodes to split the partitions")
    return a, b


def node(app: EddaApp) -> Node:
    assert app._node is not None
    return app._node


async def test_mail_is_batched_per_partition_and_heard_by_the_owner_only(
    sqlite_url: str, make_app: MakeApp
) -> None:
    a, b = await two_nodes(sqlite_url, make_app)
    theirs = ids_in(owned(b), "far", 300)
    heard_a, heard_b = node(a).listener.heard, node(b).listener.heard
    for instance_id in theirs:
        await a._runner.wake(instance_id)
    await wait_until(lambda: node(a).router.carried >= 300, "the router to send them all")
    partitions = {partition_of(i, DEFAULT_PARTITIONS) for i in theirs}
    assert node(a).router.sent <= len(partitions), "one message per partition, not per id"
    await wait_until(lambda: node(b).listener.heard - heard_b == node(a).router.sent,
                     "the owner to hear every message")
    assert node(a).listener.heard == heard_a, "the sender owns none of them: it hears none"


async def test_mail_for_this_nodes_own_partitions_skips_the_transport(
    sqlite_url: str, make_app: MakeApp
) -> None:
    a, _ = await two_nodes(sqlite_url, make_app)
    sent = node(a).router.sent
    for instance_id in ids_in(owned(a), "near", 50):
        await a._runner.wake(instance_id)
    assert node(a).router.sent == sent


async def test_subscriptions_follow_the_placement(sqlite_url: str, make_app: MakeApp) -> None:
    a, b = await two_nodes(sqlite_url, make_app)
    assert node(a).listener.following == owned(a)
    assert node(b).listener.following == owned(b)
    await b.shutdown()
    await wait_until(lambda: node(a).listener.following == set(range(DEFAULT_PARTITIONS)),
                     "the survivor to follow every partition")


def test_the_wire_format_is_a_tagged_struct() -> None:
    mail = InstanceMail(wake=["a", "b"], cancel=["c"])
    data = encode_mail(mail)
    assert b'"type":"instance_mail"' in data
    assert decode_mail(data) == mail
    addresses = Addresses("0123abcd")
    assert addresses.partition(7) == "edda.0123abcd.part.7"
    assert addresses.node("svc.with dots-1") == "edda.0123abcd.node.svc_with_dots-1"
    with pytest.raises(ValueError, match="cannot be a subject token"):
        Addresses("a.b")


async def test_a_large_batch_is_split_to_fit_a_notification(
    sqlite_url: str, make_app: MakeApp
) -> None:
    a, b = await two_nodes(sqlite_url, make_app)
    one = ids_in({min(owned(b))}, "many", 200)
    sent = node(a).router.sent
    heard = node(b).listener.heard
    for instance_id in one:
        await a._runner.wake(instance_id)
    await wait_until(lambda: node(b).listener.heard - heard == 4, "four messages of 64 ids")
    assert node(a).router.sent - sent == 4
