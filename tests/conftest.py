"""Shared fixtures: SQLite files, a real PostgreSQL server, apps that shut down."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from edda import EddaApp
from tests.support.natsserver import NatsCluster, NatsServer
from tests.support.pgserver import LocalPostgres

_db_names = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """One PostgreSQL server for the session; a test gets its own database."""
    server = LocalPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One nats-server for the session."""
    server = NatsServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def nats_cluster() -> Iterator[NatsCluster]:
    """A cluster of three nats-servers for the session."""
    cluster = NatsCluster().start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'edda.db'}"


@pytest.fixture
def postgres_url(postgres: LocalPostgres) -> str:
    return postgres.create_database(f"t{os.getpid()}_{next(_db_names)}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
async def make_app() -> AsyncIterator[Callable[..., EddaApp]]:
    """Build apps that are shut down after the test, whatever happens."""
    apps: list[EddaApp] = []

    def build(db_url: str, **kwargs: object) -> EddaApp:
        kwargs.setdefault("lease_seconds", 5.0)
        app = EddaApp("test", db_url, **kwargs)  # type: ignore[arg-type]
        apps.append(app)
        return app

    yield build
    for app in reversed(apps):
        await app.shutdown()
