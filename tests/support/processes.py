"""Child processes for crash tests: run one until it says where it is, then SIGKILL it."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def kill_at_line(script: Path, args: list[str], env: dict[str, str], marker: str) -> None:
    """Run ``python script *args`` until its first line of output, which must be
    ``marker``, then SIGKILL it and check that the kill is what ended it."""
    with subprocess.Popen([sys.executable, str(script), *args], env=env,
                          stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            assert line == marker, f"child printed {line!r}, expected {marker!r}"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
