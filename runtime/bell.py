"""The transport a node makes for itself when the app is given none.

It reaches this process's own subscribers, and rings the other processes on
the same database (`edda.transports.bridge`): over LISTEN/NOTIFY on PostgreSQL,
over Unix datagram sockets beside the file on SQLite. That is how an event
posted to one worker of an ASGI server wakes, within milliseconds, a workflow
that another worker runs, and how nodes hear each other join and leave.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from edda.journal.database import parse_db_url
from edda.transports.bells import PgBell, SocketBell, bell_directory
from edda.transports.bridge import BridgedTransport


def own_transport(db_url: str) -> BridgedTransport:
    """The bridged transport for the processes of the database at ``db_url``."""
    parsed = parse_db_url(db_url)
    url = make_url(parsed.url)
    if parsed.dialect == "postgresql":
        return BridgedTransport(PgBell(url.set(drivername="postgresql").render_as_string(False)))
    assert url.database is not None
    return BridgedTransport(SocketBell(bell_directory(url.database)))
