"""Placement: which node owns which partition, kept alive by one heartbeat.

A node registers its row, then every third of the lease renews the row and all
its partitions in one transaction (`edda.journal.partitions.Heartbeat`). After
each beat it rebalances: the partitions are spread over the live nodes by
rendezvous hashing, so every node computes the same spread from the same
membership, a joining node takes its share from each of the others, and a dead
node's partitions are spread over the survivors rather than taken whole by the
first to notice. A node gives up a partition another node should own (after
stopping its actors there) and takes what it should own once it is free or
expired. It wakes up exactly when a partition it should own is due to expire,
so a dead node's work moves within the lease plus a moment.

Locally the node counts its lease from the moment it *sent* each renewal, so it
always believes its lease ends no later than the database does: when no
renewal came back by then (the database is away, or another node declared it
dead), it stops every actor before anyone else may take their partitions, and
takes partitions again, at new epochs, once the database answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import socket
import uuid
from typing import TYPE_CHECKING

import anyio

from edda.actors.leases import process_alive, process_start_token
from edda.journal.faults import describe, is_transient
from edda.journal.partitions import partition_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

    from anyio.abc import TaskStatus

    from edda.journal.clock import Clock
    from edda.journal.leases import NodeRow
    from edda.journal.partitions import Beat
    from edda.journal.stores import LeaseStore

log = logging.getLogger("edda.placement")

#: How long after a partition's expiry the node that should own it looks again.
_TAKEOVER_SLACK = 0.02
#: While another live node still holds part of this node's share (it joined, and
#: the others have not given it up yet), it looks again this soon, then less often.
_CATCH_UP_FIRST = 0.05


def _score(node_id: str, partition: int) -> int:
    digest = hashlib.blake2b(f"{node_id}/{partition}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def spread(partitions: int, nodes: Collection[str]) -> dict[int, str]:
    """Rendezvous placement: each partition's owner among ``nodes`` (the one that
    scores highest for it). Adding or removing a node moves only its share."""
    ordered = sorted(nodes)
    return {p: max(ordered, key=lambda n: _score(n, p)) for p in range(partitions)}


class Placement:
    """This node's row, its partitions and their heartbeat: the "lease heartbeat"
    service. ``owned`` maps each partition the node holds to its epoch."""

    name = "lease heartbeat"

    def __init__(
        self,
        store: LeaseStore,
        node_id: str,
        service_name: str,
        lease_seconds: float,
        *,
        clock: Clock,
        on_lost: Callable[[set[int]], Awaitable[None]],
        on_handover: Callable[[set[int], float], Awaitable[None]],
        on_gained: Callable[[dict[int, int]], Awaitable[None]],
        on_released: Callable[[], Awaitable[None]],
        handover_seconds: float = 10.0,
        unreachable: Collection[str] = frozenset(),
        start_margin: float | None = None,
        observer: bool = False,
    ) -> None:
        self.store = store
        #: An observer registers no row, so it never owns a partition: it serves
        #: queries and sends starts and cancels to the owners, and runs nothing.
        self.observer = observer
        self.node_id = node_id
        self.service_name = service_name
        self.lease_seconds = lease_seconds
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self._clock = clock
        self._on_lost = on_lost
        self._on_handover = on_handover
        self._on_gained = on_gained
        self._on_released = on_released
        #: Nodes the transport says are gone (kept up to date by the node's liveness).
        self._unreachable = unreachable
        #: Lease time that must be left to start an activity (`surely_holds`).
        self.start_margin = lease_seconds / 10 if start_margin is None else start_margin
        #: Nodes gone from the transport: the lease they had left when last read, or
        #: None once they were seen renewing (cut off, not dead).
        self._cut_off: dict[str, float | None] = {}
        #: Partitions of the database (known once registered).
        self.count = 0
        self.owned: dict[int, int] = {}
        self._registered = False
        self._valid_until = 0.0
        self._nudge = asyncio.Event()
        self._lock = asyncio.Lock()
        #: Seconds until a partition another node holds expires (as last read).
        self._takeover_in: float | None = None
        #: Set while the node holds every partition it should (its share).
        self._settled = asyncio.Event()
        self._catch_up = _CATCH_UP_FIRST
        #: Times the lease was lost (for tools and tests).
        self.lost = 0
        #: Partitions being handed over: still held (and renewed), but their actors
        #: start no activity, and no new instance or activation goes there.
        self.leaving: set[int] = set()
        self._handovers: set[asyncio.Task[None]] = set()
        self._renewed = asyncio.Event()
        #: How long a handover lets running activities finish.
        self.handover_seconds = handover_seconds

    # -- what the node asks ---------------------------------------------------------

    def partition(self, instance_id: str) -> int:
        return partition_of(instance_id, self.count)

    def epoch_of(self, instance_id: str) -> int | None:
        """The epoch at which this node holds ``instance_id``'s partition, if it does
        (and is not handing it over)."""
        if not self.count:
            return None
        part = self.partition(instance_id)
        return None if part in self.leaving else self.owned.get(part)

    def surely_holds(self, instance_id: str) -> bool:
        """Whether this node holds ``instance_id``'s partition, is not handing it over,
        and its lease (counted from when the last renewal was sent) has more than
        ``start_margin`` left (a tenth of it; more than half on NATS, where others
        may declare a node that NATS says is gone dead at half)."""
        return (self.epoch_of(instance_id) is not None
                and self._clock.monotonic() < self._valid_until - self.start_margin)

    async def next_renewal(self) -> None:
        """Wait for the next renewal (or registration) of the lease."""
        await self._renewed.wait()

    def _renewal(self) -> None:
        self._renewed.set()
        self._renewed = asyncio.Event()

    def new_id(self, prefix: str) -> tuple[str, int, int]:
        """A fresh instance id in one of this node's partitions, with that partition
        and its epoch; epoch 0 (any partition) when the node holds none yet."""
        mine = [p for p in self.owned if p not in self.leaving]
        if not mine:
            iid = f"{prefix}-{uuid.uuid4().hex}"
            return iid, self.partition(iid), 0
        part = random.choice(mine)
        return self.id_in(prefix, part), part, self.owned[part]

    def id_in(self, prefix: str, partition: int) -> str:
        """A fresh instance id that falls in ``partition``."""
        while True:
            iid = f"{prefix}-{uuid.uuid4().hex}"
            if partition_of(iid, self.count) == partition:
                return iid

    async def wait_for_share(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until this node holds its whole share."""
        with anyio.move_on_after(timeout):
            await self._settled.wait()
        return self._settled.is_set()

    def nudge(self) -> None:
        """Look at the membership again now (a node joined, left or freed partitions)."""
        self._nudge.set()

    # -- the service ----------------------------------------------------------------

    async def _register(self) -> None:
        """Register the node's row, waiting out an unavailable database. The lease
        counts from the attempt that succeeded."""
        delay = 0.05
        while True:
            sent = self._clock.monotonic()
            try:
                self.count = await self.store.register(
                    self.node_id, self.service_name, self.hostname, self.pid,
                    process_start_token(self.pid), self.lease_seconds)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("could not register node %s (%s); trying again", self.node_id,
                            describe(exc))
                await self._clock.sleep(delay)
                delay = min(delay * 2, self.lease_seconds / 3)
                continue
            self._registered = True
            self._valid_until = sent + self.lease_seconds
            self._renewal()
            return

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Register, take this node's share, report ready, then beat and rebalance
        until cancelled."""
        if self.observer:
            self.count = len(await self.store.partitions())
            self._settled.set()
            task_status.started()
            await asyncio.Event().wait()  # holds nothing, so there is nothing to renew
        await self._register()
        await self.rebalance()
        task_status.started()
        while True:
            await self._wait(self._next_beat_in())
            sent = self._clock.monotonic()
            beat = await self._beat()
            if beat is None or not beat.registered:
                await self._lose_all("it could not be renewed in time" if beat is None
                                     else "another node declared it dead")
                await self._register()  # waits for the database if need be
                log.warning("node %s registered again; taking its partitions back",
                            self.node_id)
            else:
                gone = {p for p, e in self.owned.items() if beat.owned.get(p) != e}
                if gone:
                    log.warning("node %s lost partitions %s (their lease ran out)",
                                self.node_id, sorted(gone))
                    await self._drop(gone)
                self._valid_until = sent + self.lease_seconds
                self._renewal()
            try:
                await self.rebalance()
            except Exception:
                log.warning("rebalancing partitions failed; trying again", exc_info=True)

    async def _beat(self) -> Beat | None:
        """Renew; None if no answer came while the lease surely held."""
        failing = False
        while True:
            within = self._valid_until - self._clock.monotonic()
            if within <= 0:
                return None
            try:
                return await self._within(within)
            except Exception as exc:
                # Once per attempt would flood the log during an outage.
                log.log(logging.DEBUG if failing else logging.WARNING,
                        "could not renew the lease of node %s (%s); trying again until it "
                        "runs out", self.node_id, describe(exc))
                failing = True
                await self._clock.sleep(min(0.2, self.lease_seconds / 10))

    async def _within(self, seconds: float) -> Beat | None:
        """One renewal; None if it took longer than ``seconds`` (by the node's clock)."""
        answer: Beat | None = None
        async with anyio.create_task_group() as tg:
            async def deadline() -> None:
                await self._clock.sleep(seconds)
                tg.cancel_scope.cancel()

            tg.start_soon(deadline)
            answer = await self.store.beat(self.node_id, self.lease_seconds)
            tg.cancel_scope.cancel()
        return answer

    def _next_beat_in(self) -> float:
        return max(0.0, self._valid_until - self.lease_seconds * 2 / 3
                   - self._clock.monotonic())

    async def _wait(self, beat_in: float) -> None:
        timeout = beat_in if self._takeover_in is None else min(beat_in, self._takeover_in)
        if not self._settled.is_set():
            timeout = min(timeout, self._catch_up)
            self._catch_up = min(self._catch_up * 2, self.lease_seconds / 3)
        handle = self._clock.call_at(self._clock.now() + timeout, self._nudge.set)
        try:
            await self._nudge.wait()
        finally:
            handle.cancel()
        self._nudge.clear()

    async def _lose_all(self, why: str) -> None:
        self.lost += 1
        log.error("node %s lost its lease (%s); stopping its actors", self.node_id, why)
        await self._drop(set(self.owned))
        self._registered = False

    async def _drop(self, partitions: set[int]) -> None:
        for p in partitions:
            self.owned.pop(p, None)
        await self._on_lost(partitions)

    def _dead(self, row: NodeRow, unreachable: Collection[str]) -> bool:
        """Expired; or a process of this host that is gone; or gone from the
        transport and late with its renewal (renewals every third of the lease keep
        more than half of it left)."""
        return row.node_id != self.node_id and (
            row.expired or (row.hostname == self.hostname
                            and not process_alive(row.pid, row.proc_start))
            or (row.node_id in unreachable and row.remaining < self.lease_seconds / 2))

    def _note_cut_off(self, rows: list[NodeRow], unreachable: Collection[str]) -> float | None:
        """Say once of each node gone from the transport that it still renews its
        lease (its lease grew since it was last read); return when the first of
        them is due to be late."""
        due: float | None = None
        for row in rows:
            if row.node_id not in unreachable:
                continue
            before = self._cut_off.get(row.node_id, row.remaining)
            if before is not None and row.remaining > before:
                log.warning("node %s is cut off from the transport but renews its lease; it "
                            "keeps its partitions and finds their news at its sweeps",
                            row.node_id)
            self._cut_off[row.node_id] = (None if before is None or row.remaining > before
                                          else row.remaining)
            late_in = row.remaining - self.lease_seconds / 2 + _TAKEOVER_SLACK
            due = late_in if due is None else min(due, late_in)
        for node_id in set(self._cut_off) - set(unreachable):
            del self._cut_off[node_id]
        return due

    async def rebalance(self) -> None:
        """Give up what another live node should own; take what this one should own
        and is free; note when the next partition this node should own expires."""
        async with self._lock:
            rows = await self.store.nodes()
            unreachable = set(self._unreachable)
            dead = [r.node_id for r in rows if self._dead(r, unreachable)]
            if dead:
                log.info("nodes %s are dead; their partitions are free", dead)
                await self.store.remove(dead)
            alive = [r for r in rows if r.node_id not in dead]
            late_in = self._note_cut_off(alive, unreachable)
            live = {r.node_id for r in alive} | {self.node_id}
            wanted = {p for p, n in spread(self.count, live).items() if n == self.node_id}
            surplus = set(self.owned) - wanted - self.leaving
            if surplus:
                self.leaving |= surplus
                task = asyncio.create_task(self._hand_over(surplus),
                                           name="edda-partition-handover")
                self._handovers.add(task)
                task.add_done_callback(self._handovers.discard)
            leases = await self.store.partitions()
            free = {r.partition for r in leases if r.partition in wanted
                    and r.partition not in self.owned
                    and (r.owner_node in (None, self.node_id) or r.remaining <= 0)}
            if free:
                got = await self.store.acquire(self.node_id, free, self.lease_seconds)
                if got:
                    self.owned.update(got)
                    await self._on_gained(got)
            waiting = [r.remaining for r in leases if r.owner_node not in (None, self.node_id)
                       and r.remaining > 0]
            self._takeover_in = min(waiting) + _TAKEOVER_SLACK if waiting else None
            if late_in is not None:
                self._takeover_in = (late_in if self._takeover_in is None
                                     else min(self._takeover_in, late_in))
            if wanted <= set(self.owned):
                self._settled.set()
                self._catch_up = _CATCH_UP_FIRST
            else:
                self._settled.clear()

    async def _hand_over(self, partitions: set[int]) -> None:
        """Give ``partitions`` to the node that should own them: activities under way
        there finish first (up to ``handover_seconds``, while the heartbeat goes on
        renewing their lease), so that node does not run them again."""
        try:
            await self._on_handover(partitions, self.handover_seconds)
            async with self._lock:
                for p in partitions:
                    self.owned.pop(p, None)
                await self.store.release_partitions(self.node_id, partitions)
        except Exception:
            log.warning("handing partitions %s over failed; their lease runs out instead",
                        sorted(partitions), exc_info=True)
            await self._drop(partitions)
        finally:
            self.leaving -= partitions
        await self._on_released()

    async def drain(self) -> None:
        """Give every partition up at once, for the others to take (bounded by the
        lease: an unavailable database lets it expire by itself)."""
        for task in list(self._handovers):
            task.cancel()
        await asyncio.gather(*self._handovers, return_exceptions=True)
        if not self._registered:
            return
        with anyio.move_on_after(self.lease_seconds):
            await self.store.remove([self.node_id])
            self._registered = False
            self.owned.clear()
