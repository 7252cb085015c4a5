"""What differs between SQLite and PostgreSQL, in one place.

The stores share their statements; where the two databases need different SQL
(row locks, skipping locked rows, JSON paths, the database's own clock) they ask
the connection's dialect. No other module branches on the database kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from edda.journal import schema

if TYPE_CHECKING:
    from sqlalchemy import Connection


class SqlDialect:
    """The SQLite flavour; `PostgresDialect` overrides what PostgreSQL does otherwise."""

    name = "sqlite"

    def lock(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """``query`` locking the rows it reads until commit (SQLite: the write lock does)."""
        return query

    def skip_locked(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """``query`` locking its rows and skipping rows another transaction locked."""
        return query

    def key_share(self, query: sa.Select[Any], of: sa.Table) -> sa.Select[Any]:
        """``query`` holding the rows it reads of ``of`` against deletion and against
        `lock`, but not against updates that change no key (a fencing read: a lease
        renewal does not wait for it; a takeover does)."""
        return query

    def now(self) -> sa.ColumnElement[float]:
        """The database's own clock, in UNIX seconds: what leases are judged by."""
        return sa.cast((sa.func.julianday("now") - 2440587.5) * 86400.0, sa.Double)

    def json_equals(self, column: sa.ColumnElement[Any], path: str,
                    value: Any) -> sa.ColumnElement[bool]:
        """``column`` (JSON text) has ``value`` at the dotted ``path``."""
        extracted: sa.ColumnElement[Any] = sa.func.json_extract(column, "$." + path)
        if value is None:
            return extracted.is_(None)
        if isinstance(value, bool):
            return extracted == int(value)
        result: sa.ColumnElement[bool] = extracted == value
        return result

    def serialize_migrations(self, conn: Connection) -> None:
        """Make concurrent migrators wait for each other (SQLite: BEGIN IMMEDIATE does)."""

    def stamp(self, conn: Connection, node_id: str, token: str, now: float) -> None:
        """Record ``token`` as the writer's last batch, in the batch's transaction."""
        conn.execute(_STAMP[self.name], {"node_id": node_id, "token": token, "now": now})


class PostgresDialect(SqlDialect):
    name = "postgresql"
    _MIGRATION_LOCK = 0x6564_6461  # "edda"

    def lock(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update()

    def skip_locked(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query.with_for_update(skip_locked=True)

    def key_share(self, query: sa.Select[Any], of: sa.Table) -> sa.Select[Any]:
        return query.with_for_update(key_share=True, read=True, of=of)

    def now(self) -> sa.ColumnElement[float]:
        return sa.cast(sa.extract("epoch", sa.func.clock_timestamp()), sa.Double)

    def json_equals(self, column: sa.ColumnElement[Any], path: str,
                    value: Any) -> sa.ColumnElement[bool]:
        path_array = sa.cast(sa.literal("{" + ",".join(path.split(".")) + "}"), ARRAY(sa.Text))
        text: sa.ColumnElement[Any] = sa.cast(column, sa.JSON).op("#>>")(path_array)
        if value is None:
            return text.is_(None)
        if isinstance(value, bool):
            return text == ("true" if value else "false")
        return text == str(value)

    def serialize_migrations(self, conn: Connection) -> None:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(self._MIGRATION_LOCK)))


def _stamp(insert: Any) -> Any:
    statement = insert(schema.writer_marks).values(node_id=sa.bindparam("node_id"),
                                                   token=sa.bindparam("token"),
                                                   stamped_at=sa.bindparam("now"))
    return statement.on_conflict_do_update(
        index_elements=["node_id"],
        set_={"token": statement.excluded.token, "stamped_at": statement.excluded.stamped_at})


_STAMP = {"sqlite": _stamp(sqlite.insert), "postgresql": _stamp(postgresql.insert)}

SQLITE = SqlDialect()
POSTGRESQL = PostgresDialect()


def dialect_of(name: str) -> SqlDialect:
    """The dialect of a connection's ``dialect.name``."""
    return POSTGRESQL if name == "postgresql" else SQLITE
