"""Node processes for cluster tests: start one, talk to it, stop or kill it."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edda.journal.partitions import DEFAULT_PARTITIONS, partition_of
from tests.support.gates import wait_until

if TYPE_CHECKING:
    from edda import EddaApp

ROOT = Path(__file__).resolve().parents[2]


class NodeProcess:
    """A node in a child process (`tests.support.cluster_child`), optionally under
    another host name (its own UTS namespace), as a node on another machine."""

    def __init__(self, db_url: str, lease: float, *, hostname: str | None = None,
                 env: dict[str, str] | None = None, nats: list[str] | None = None,
                 recovery: float | None = None) -> None:
        self.db_url = db_url
        self.lease = lease
        self.hostname = hostname
        self.env = dict(env or {})
        if nats:
            self.env["EDDA_TEST_NATS"] = ",".join(nats)
        if recovery is not None:
            self.env["EDDA_TEST_RECOVERY"] = str(recovery)
        self.worker_id = ""
        self._child: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> NodeProcess:
        command = [sys.executable, "-m", "tests.support.cluster_child", self.db_url,
                   str(self.lease)]
        if self.hostname is not None:
            command = ["unshare", "--uts", "sh", "-c", f'hostname {self.hostname} && exec "$@"',
                       "sh", *command]
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        self._child = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self._next(timeout)
        if not ready.startswith("ready "):
            raise AssertionError(f"the node process said {ready!r} instead of 'ready'")
        self.worker_id = ready.split(" ", 1)[1]
        return self

    def _read(self) -> None:
        assert self._child is not None and self._child.stdout is not None
        for line in self._child.stdout:
            self._lines.put(line.strip())
        self._lines.put("<exited>")

    def _next(self, timeout: float) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the node process said nothing for {timeout} s") from None

    def ask(self, command: str, timeout: float = 30.0) -> str:
        """Send one command line and return the answer line."""
        assert self._child is not None and self._child.stdin is not None
        self._child.stdin.write(command + "\n")
        self._child.stdin.flush()
        return self._next(timeout)

    def partitions(self) -> set[int]:
        return set(json.loads(self.ask("partitions")))

    def start_workflow(self, workflow: str, instance_id: str, **kwargs: object) -> str:
        answer = self.ask(f"start {workflow} {instance_id} {json.dumps(kwargs)}")
        assert answer == f"started {instance_id}", answer
        return instance_id

    @property
    def pid(self) -> int:
        assert self._child is not None
        return self._child.pid

    def signal(self, number: int) -> None:
        """Signal the node's Python process (under ``unshare`` too: it execs)."""
        os.kill(self.pid, number)

    def kill(self) -> None:
        """SIGKILL the node and wait for it to be gone."""
        if self._child is not None and self._child.poll() is None:
            self.signal(signal.SIGKILL)
        self._reap(10)

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the node down gracefully."""
        if self._child is not None and self._child.poll() is None:
            assert self.ask("quit", timeout) == "bye"
        self._reap(timeout)

    def _reap(self, timeout: float) -> None:
        child = self._child
        if child is None:
            return
        child.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def ids_in(partitions: set[int], prefix: str, count: int) -> list[str]:
    """``count`` instance ids that fall in ``partitions``."""
    found = (f"{prefix}-{n}" for n in itertools.count())
    return list(itertools.islice(
        (i for i in found if partition_of(i, DEFAULT_PARTITIONS) in partitions), count))


def owned(app: EddaApp) -> set[int]:
    assert app._node is not None
    return set(app._node.placement.owned)


async def started_node(app: EddaApp, db_url: str, lease: float = 30.0,
                       **kwargs: Any) -> NodeProcess:
    """A child node, once it holds its share (and this node gave it up)."""
    child = await asyncio.to_thread(NodeProcess(db_url, lease, **kwargs).start)
    await wait_until(lambda: split_between(app, child), "the new node to take its share",
                     timeout=15)
    return child


async def split_between(app: EddaApp, child: NodeProcess) -> bool:
    """Whether this node and ``child`` hold every partition between them, each some."""
    theirs = await asyncio.to_thread(child.partitions)
    return bool(theirs) and not theirs & owned(app) and \
        len(theirs | owned(app)) == DEFAULT_PARTITIONS
