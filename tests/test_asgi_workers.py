"""An ASGI server with four worker processes, each a node on one database: an
event posted to whichever worker answers resumes, at once, a workflow waiting in
another (the sweep, every 60 s here, cannot explain it)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.support.cluster import ROOT
from tests.support.gates import wait_until

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_event_posted_to_one_worker_resumes_a_workflow_in_another(
    db_url: str
) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDDA_DB_URL": db_url}
    server = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "uvicorn", "tests.support.asgi_workers_app:app", "--workers",
         "4", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        # A new connection per request: the kernel hands each to any worker.
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=10, limits=fresh) as client:
            nodes: set[str] = set()

            async def all_workers_up() -> bool:
                try:
                    for _ in range(16):
                        nodes.add((await client.get("/health")).json()["node"])
                except httpx.HTTPError:
                    return False
                return len(nodes) == 4

            await wait_until(all_workers_up, "four workers to answer", timeout=60)
            keys = [f"w{uuid.uuid4().hex[:8]}" for _ in range(12)]
            ids = []
            for key in keys:
                answer = await client.post("/api/workflows/await_go", json={"key": key})
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["instance_id"])

            async def all_waiting() -> bool:
                for instance_id in ids:
                    inst = (await client.get(f"/api/instances/{instance_id}")).json()
                    if inst["status"] != "waiting_for_message":
                        return False
                return True

            await wait_until(all_waiting, "every instance to wait for its event", timeout=30)
            for key in keys:
                event = {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "test",
                         "type": f"go.{key}", "data": {"key": key}}
                answer = await client.post(
                    "/", json=event, headers={"content-type": "application/cloudevents+json"})
                assert answer.status_code == 202, answer.text
            finished: dict[str, str] = {}

            async def all_done() -> bool:
                for instance_id in ids:
                    if instance_id in finished:
                        continue
                    result = (await client.get(f"/api/instances/{instance_id}/result")).json()
                    if result["finished"]:
                        finished[instance_id] = result["result"]["node"]
                return len(finished) == len(ids)

            await wait_until(all_done, "every instance to resume", timeout=30)
            assert set(finished.values()) <= nodes
            assert len(set(finished.values())) > 1, "the instances ran in several workers"
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 30)
