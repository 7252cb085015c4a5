"""Node processes for cluster tests: start one, talk to it, stop or kill it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class NodeProcess:
    """A node in a child process (`tests.support.cluster_child`), optionally under
    another host name (its own UTS namespace), as a node on another machine."""

    def __init__(self, db_url: str, lease: float, *, hostname: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.db_url = db_url
        self.lease = lease
        self.hostname = hostname
        self.env = env or {}
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
