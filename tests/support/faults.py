"""Filesystem faults under a real SQLite database: a full disk, a read-only one.

`small_tmpfs` mounts a tmpfs of a given size on a fresh temporary directory (root
only, with ``mount``); a test puts its SQLite file there and calls `Tmpfs.fill` /
`Tmpfs.free` or `Tmpfs.read_only` / `Tmpfs.read_write` while a node runs.
`ext4_volume` mounts a small ext4 image through a loop device; `Volume.read_only` /
`Volume.writable` turn writes off and on under live connections, and `Volume.fail`
is a real ext4 error. Nothing is mocked: SQLite meets the kernel's ENOSPC, EPERM
and EROFS. Anything the harness cannot do raises `FaultError`, so a test fails
loudly instead of skipping.

What SQLite 3.40 reports, measured on Linux 6.18 in WAL mode with
``synchronous=FULL`` (error names are ``sqlite3.Error.sqlite_errorname``):

Full disk (`Tmpfs.fill`), on a connection that stays open:

- A write that needs new space (a WAL frame past the WAL's current end, a
  checkpoint growing the database file) fails with ``sqlite3.OperationalError:
  database or disk is full`` [SQLITE_FULL]. In ``BEGIN IMMEDIATE ... COMMIT`` the
  statements succeed and the ``COMMIT`` fails; the transaction is then already
  rolled back (``in_transaction`` is false; a ``ROLLBACK`` says "no transaction
  is active").
- Writes that fit in space SQLite already holds still succeed: after a
  checkpoint the WAL is rewritten from its start, so inserts go through until
  the WAL outgrows its old size. Run ``PRAGMA wal_checkpoint(TRUNCATE)`` before
  `fill` for the very next write to fail.
- Reads work, on the open connection and on new ones.
- After `Tmpfs.free` the same connection writes again; ``integrity_check`` is ok.

Read-only (`Tmpfs.read_only`):

- Linux refuses to remount a filesystem read-only while any file on it is open
  for writing (EBUSY, "mount point is busy"), and every SQLite connection, even
  one opened with ``mode=ro``, holds the database and its ``-shm`` open
  read-write. So the fault cannot hit a live connection: `read_only` raises
  `FaultError` naming the open files. Close the node's connections first.
- With ``-wal`` and ``-shm`` left on disk (a reader closed last, or a writer
  crashed), a connection opened while read-only reads fine; ``BEGIN IMMEDIATE``
  succeeds and the ``INSERT`` fails with ``sqlite3.OperationalError: attempt to
  write a readonly database`` [SQLITE_READONLY]. That connection stays read-only
  after `read_write` (SQLite opened the file O_RDONLY), and so does every new
  connection of the same process while it is open (SQLite shares one handle per
  file within a process): close them all, then reconnect. Another process
  writes at once. Such connections do not block a later `read_only`.
- After a clean close (the last connection deletes ``-wal`` and ``-shm``), the
  first statement of a new connection, read or write, fails with
  ``sqlite3.OperationalError: unable to open database file`` [SQLITE_CANTOPEN]:
  a WAL database cannot be read without creating its ``-shm``.

Read-only under live connections (`ext4_volume`; Linux 6.18, no device-mapper):

- `Volume.fail` is what a failing disk does: an ext4 error under
  ``errors=remount-ro``. The filesystem stays mounted "rw" with the flag
  ``emergency_ro``; writes fail with EROFS, reads work. In ``BEGIN IMMEDIATE ...
  COMMIT`` the statements succeed and the ``COMMIT`` fails with
  ``sqlite3.OperationalError: disk I/O error`` [SQLITE_IOERR_WRITE], the
  transaction already rolled back; a checkpoint fails with "disk I/O error"
  [SQLITE_IOERR_FSYNC]. Reads and ``integrity_check`` work on every connection.
  A connection opened afterwards is read-only: its ``BEGIN IMMEDIATE`` succeeds
  and its ``INSERT`` fails with "attempt to write a readonly database"
  [SQLITE_READONLY]. It cannot be undone under open files: ``mount -o
  remount,rw`` is a no-op that keeps ``emergency_ro`` (the kernel never clears
  it), remounting read-only first is refused while files are open for writing
  (EBUSY), and the journal is aborted. Only closing every connection, then
  `Volume.remount` (unmount, mount; no ``e2fsck`` needed), gives a writable
  database again, with every committed row.
- `Volume.read_only` is the reversible stand-in: it sets the immutable flag
  (``chattr +i``) on every directory and file of the volume but the ``-shm``
  files, and ext4 refuses writes to immutable files even through descriptors
  opened before (EPERM). SQLite reports the same as above for the open writer
  (``COMMIT``: "disk I/O error" [SQLITE_IOERR_WRITE], rolled back) and for a
  new connection (``INSERT``: [SQLITE_READONLY]); a checkpoint fails with
  [SQLITE_IOERR_WRITE] (fsync still works). Reads work. After `Volume.writable`
  the same connections write, commit and checkpoint again, nothing is lost and
  ``integrity_check`` is ok. A connection opened while read-only stays
  read-only after (SQLite opened the file O_RDONLY) until closed and reopened;
  connections opened later write. The ``-shm`` stays writable: writing to a
  mapped immutable file kills the process with SIGBUS. (tmpfs ignores the flag
  on open descriptors, hence ext4.)
- Neither ``blockdev --setro`` on the loop device (the kernel only warns, and
  writes go through) nor a bind mount made read-only (EBUSY, like a remount) is
  a fault. ``fsfreeze`` makes the ``COMMIT`` block until thawed, not fail.
  There is no device-mapper in this kernel (``dmsetup`` finds no driver).
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

MiB = 1 << 20


class FaultError(RuntimeError):
    """The harness could not set up or inject a fault."""


def _run(*command: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise FaultError(f"{' '.join(command)}: no `{command[0]}` program") from exc
    if result.returncode != 0:
        raise FaultError(
            f"{' '.join(command)} failed (exit {result.returncode}, euid {os.geteuid()}): "
            f"{result.stderr.strip()}"
        )


def _mount(*args: str) -> None:
    _run("mount", *args)


def _open_files_under(root: Path) -> list[str]:
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith(f"{root}/"):
                        found.append(f"{target} (pid {fd_dir.parent.name})")
    return sorted(found)


class Tmpfs:
    """A mounted tmpfs; put a SQLite file under `path` and inject faults."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.ballast = path / ".ballast"

    def read_only(self) -> None:
        """Remount read-only.

        Raises:
            FaultError: a file on it is open for writing (any SQLite connection is).
        """
        try:
            _mount("-o", "remount,ro", str(self.path))
        except FaultError as exc:
            holders = ", ".join(_open_files_under(self.path)) or "none found"
            raise FaultError(
                f"{exc}\nLinux cannot make a filesystem read-only while files on it are open "
                f"for writing; close every SQLite connection first. Open now: {holders}"
            ) from None

    def read_write(self) -> None:
        """Remount read-write."""
        _mount("-o", "remount,rw", str(self.path))

    def fill(self) -> None:
        """Fill the filesystem to the last byte with a ballast file."""
        chunk = memoryview(bytes(MiB))
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while chunk:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    chunk = chunk[: len(chunk) // 2]
        finally:
            os.close(fd)
        if os.statvfs(self.path).f_bavail != 0:
            raise FaultError(f"{self.path} still has free blocks after filling it")

    def free(self) -> None:
        """Delete the ballast, giving the space back."""
        self.ballast.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        """Bytes still free on the filesystem."""
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize


@contextlib.contextmanager
def small_tmpfs(size: int = 8 * MiB) -> Iterator[Tmpfs]:
    """Mount a tmpfs of ``size`` bytes on a fresh directory; unmount it at exit.

    Raises:
        FaultError: mounting is not permitted here (needs root or CAP_SYS_ADMIN).
    """
    path = Path(tempfile.mkdtemp(prefix="edda-tmpfs-"))
    try:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    except FaultError:
        path.rmdir()
        raise
    try:
        yield Tmpfs(path, size)
    finally:
        try:
            subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=True)
        except subprocess.CalledProcessError:
            # A connection left open keeps it busy; detach it now, the kernel frees it later.
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30,
                           check=True)
        path.rmdir()


# <linux/fs.h> on 64-bit Linux.
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def _set_immutable(path: Path, on: bool) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            flags = array.array("i", [0])
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
            flags[0] = flags[0] | _FS_IMMUTABLE_FL if on else flags[0] & ~_FS_IMMUTABLE_FL
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags)
        finally:
            os.close(fd)
    except OSError as exc:
        raise FaultError(f"cannot {'set' if on else 'clear'} the immutable flag on {path}: "
                         f"{exc}") from exc


class Volume:
    """A mounted ext4 image; put a SQLite file under `path` and inject faults."""

    def __init__(self, path: Path, image: Path) -> None:
        self.path = path
        self.image = image

    @property
    def device(self) -> str:
        """The kernel's name of the block device mounted at `path`, like ``loop0``."""
        dev = self.path.stat().st_dev
        return Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve().name

    def read_only(self) -> None:
        """Refuse every write from now on, through open descriptors too (reversible).

        Directories first (no file can appear behind us), then their files, but
        not the ``-shm`` files SQLite maps (see the module's docstring).
        """
        def walk(directory: Path) -> None:
            _set_immutable(directory, True)
            for entry in os.scandir(directory):
                if entry.is_dir(follow_symlinks=False):
                    walk(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) and not entry.name.endswith("-shm"):
                    _set_immutable(Path(entry.path), True)

        walk(self.path)

    def writable(self) -> None:
        """Undo `read_only`."""
        for directory, _, files in os.walk(self.path):
            for name in files:
                if Path(directory, name).is_file():  # not sockets: read_only skips them
                    _set_immutable(Path(directory, name), False)
            _set_immutable(Path(directory), False)

    def fail(self) -> None:
        """Raise a real ext4 error: the filesystem turns read-only until `remount`.

        Raises:
            FaultError: the kernel refused, or writes still succeed afterwards.
        """
        trigger = Path("/sys/fs/ext4", self.device, "trigger_fs_error")
        try:
            trigger.write_text("edda fault test\n")
        except OSError as exc:
            raise FaultError(f"cannot write {trigger}: {exc}") from exc
        try:
            (self.path / ".probe").touch()
        except OSError:
            return
        raise FaultError(f"{self.path} still takes writes after {trigger}")

    def remount(self) -> None:
        """Unmount and mount again, which ends a `fail`. Close every connection first.

        Raises:
            FaultError: a file on it is still open, or mounting failed.
        """
        try:
            _run("umount", str(self.path))
        except FaultError as exc:
            holders = ", ".join(_open_files_under(self.path)) or "none found"
            raise FaultError(f"{exc}\nOpen now: {holders}") from None
        _mount("-o", "loop,errors=remount-ro", str(self.image), str(self.path))


@contextlib.contextmanager
def ext4_volume(size: int = 32 * MiB) -> Iterator[Volume]:
    """Make an ext4 image of ``size`` bytes, mount it by a loop device; remove all at exit.

    Needs root, ``mkfs.ext4`` (Debian's e2fsprogs) and ``mount`` with loop devices.

    Raises:
        FaultError: any step of the set-up failed.
    """
    base = Path(tempfile.mkdtemp(prefix="edda-ext4-"))
    image, path = base / "volume.img", base / "mnt"
    path.mkdir()
    try:
        with image.open("wb") as file:
            file.truncate(size)
        _run("mkfs.ext4", "-q", "-F", str(image))
        # The loop device is detached by itself at unmount (autoclear).
        _mount("-o", "loop,errors=remount-ro", str(image), str(path))
        yield Volume(path, image)
    finally:
        if path.is_mount():
            try:
                _run("umount", str(path))
            except FaultError:
                # A connection left open keeps it busy; detach it now, the kernel frees it later.
                _run("umount", "-l", str(path))
        image.unlink(missing_ok=True)
        path.rmdir()
        base.rmdir()
