"""Telling a dead node from a live one on the same host.

A node's row records its host, pid and the process's start time. A node on the
same host whose process is gone is dead at once, without waiting out its
lease: that is how a restarted process resumes its own work within a second.
"""

from __future__ import annotations

import os
from pathlib import Path


def process_start_token(pid: int) -> str:
    """When process ``pid`` started (Linux clock ticks), or "" where unknown.

    Stored with a lease so that a reused pid is not taken for the node.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def process_alive(pid: int, start_token: str) -> bool:
    """Whether the process that registered a lease on this host still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start_token or process_start_token(pid) in ("", start_token)
