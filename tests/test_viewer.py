"""The web viewer in a real browser: Debian's chromium, driven by Playwright, against
the app served by uvicorn on 127.0.0.1.

Each test saves a screenshot of the pages it saw under ``$EDDA_TEST_ARTIFACTS``
(``test-artifacts/`` at the repository's root by default). A chromium that cannot
start fails the test, saying why; it is never skipped.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pydantic
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from edda import (
    EddaApp,
    RetryPolicy,
    TerminalError,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    send_event,
    wait_event,
    workflow,
)
from edda.http import bearer_token
from tests.support.web import serve

pytestmark = pytest.mark.anyio

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("EDDA_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parent.parent / "test-artifacts")
TOKEN = "viewer-s3cret"
#: Playwright's waiting assertions wait this long (ms) for the page to catch up.
expect.set_options(timeout=10_000)

ATTEMPTS: dict[str, int] = {}
BROKEN: set[str] = set()


@compensation
async def viewer_release_stock(ctx: WorkflowContext, order_id: str) -> None:
    return None


@activity(retry_policy=RetryPolicy(initial_interval=0.01, max_attempts=3))
@on_failure(viewer_release_stock)
async def reserve_stock(ctx: WorkflowContext, order_id: str) -> dict[str, str]:
    ATTEMPTS[order_id] = ATTEMPTS.get(order_id, 0) + 1
    if ATTEMPTS[order_id] == 1:
        raise ConnectionError("the stock service did not answer")
    return {"reserved": order_id}


@activity
async def charge_card(ctx: WorkflowContext, order_id: str, amount: float) -> str:
    if amount > 1000:
        raise TerminalError(f"card declined for {amount:.2f}")
    return f"charge-{order_id}"


@workflow
async def viewer_order(ctx: WorkflowContext, order_id: str, amount: float) -> dict[str, Any]:
    await reserve_stock(ctx, order_id)
    approval = await wait_event(ctx, f"approval.{order_id}")
    charge = await charge_card(ctx, order_id, amount)
    return {"charge": charge, "approved_by": approval.data.get("by")}


@workflow
async def viewer_ticket(ctx: WorkflowContext, ticket: str, priority: int = 1,
                        urgent: bool = False) -> str:
    await wait_event(ctx, f"ticket.{ticket}")
    return f"closed {ticket}"


@activity
async def deliver(ctx: WorkflowContext, job: str) -> str:
    if job in BROKEN:
        raise TerminalError(f"the courier refused {job}")
    return f"delivered {job}"


@workflow
async def viewer_delivery(ctx: WorkflowContext, job: str) -> str:
    return await deliver(ctx, job)


WORKFLOWS = [viewer_order, viewer_ticket, viewer_delivery]


@dataclass
class Viewer:
    app: EddaApp
    url: str
    page: Page
    errors: list[str] = field(default_factory=list)

    async def shot(self, name: str) -> None:
        await anyio.Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"viewer-{name}.png"), full_page=True)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                       args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:
            pytest.fail(f"chromium cannot start ({CHROMIUM}): {exc}. Install Debian's "
                        "chromium (apt-get install --no-install-recommends chromium; .ci/run "
                        "does this as root)", pytrace=False)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def viewer(tmp_path: Path, **app_kwargs: Any) -> AsyncIterator[Viewer]:
    """The app on a fresh SQLite file, served on 127.0.0.1, and a browser page that
    records every script error and failed request it meets."""
    app = EddaApp("viewer", f"sqlite:///{tmp_path / 'viewer.db'}", workflows=WORKFLOWS,
                  lease_seconds=5.0, **app_kwargs)
    await app.initialize()
    try:
        async with serve(app) as url, chromium() as browser:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            seen = Viewer(app, url, page)
            page.on("pageerror", lambda error: seen.errors.append(f"page error: {error}"))
            page.on("console", lambda message: seen.errors.append(message.text)
                    if message.type == "error" else None)
            yield seen
            await context.close()
    finally:
        await app.shutdown()


def rows(page: Page) -> Any:
    return page.locator("#instances tbody tr")


async def test_list_searches_filters_pages_and_updates_live(tmp_path: Path) -> None:
    async with viewer(tmp_path) as v:
        tickets = [await v.app.start_instance(viewer_ticket, ticket=f"t-{n}") for n in range(21)]
        done = await v.app.start_instance(viewer_delivery, job="parcel-1")
        await v.app.wait_result(done, timeout=10)

        await v.page.goto(f"{v.url}/viewer/")
        await expect(rows(v.page)).to_have_count(20)  # a page is 20, newest first
        await expect(v.page.locator("#page-label")).to_have_text("page 1")
        await v.shot("list")
        await v.page.click("#older")
        await expect(rows(v.page)).to_have_count(2)
        await expect(v.page.locator("#page-label")).to_have_text("page 2")
        await expect(v.page.locator("#older")).to_be_disabled()
        await v.page.click("#newer")
        await expect(rows(v.page)).to_have_count(20)

        await v.page.select_option("#status-filter", "completed")
        await expect(rows(v.page)).to_have_count(1)
        await expect(rows(v.page).first).to_have_attribute("data-instance-id", done)
        await v.page.select_option("#status-filter", "")
        await v.page.select_option("#workflow-filter", "viewer_ticket")
        await expect(rows(v.page)).to_have_count(20)
        await expect(v.page.locator("#instances td.workflow")
                     .filter(has_not_text="viewer_ticket")).to_have_count(0)
        assert "workflow=viewer_ticket" in v.page.url  # the filters live in the address

        await v.page.select_option("#workflow-filter", "")
        await v.page.fill("#search", tickets[7][-10:])
        await expect(rows(v.page)).to_have_count(1)
        await expect(rows(v.page).first).to_have_attribute("data-instance-id", tickets[7])
        await v.page.fill("#search", "delivery")  # a part of a workflow's name
        await expect(rows(v.page)).to_have_count(1)

        # live: a new instance shows up under the filters the user chose, and only there
        await v.page.fill("#search", "")
        await v.page.select_option("#status-filter", "completed")
        await expect(rows(v.page)).to_have_count(1)
        await v.app.start_instance(viewer_ticket, ticket="late")
        second = await v.app.start_instance(viewer_delivery, job="parcel-2")
        await expect(rows(v.page)).to_have_count(2)
        await expect(rows(v.page).first).to_have_attribute("data-instance-id", second)
        await expect(v.page.locator("#status-filter")).to_have_value("completed")
        await v.shot("list-filtered")

        await v.page.click("#nav-nodes")
        node = v.page.locator(f'#nodes-table tr[data-node-id="{v.app.worker_id}"]')
        await expect(node).to_contain_text("this node")
        await expect(node.locator(".count")).to_have_text("64")
        await expect(v.page.locator("#partition-grid .cell")).to_have_count(64)
        await v.shot("nodes")
        assert v.errors == []


async def test_instance_page_shows_retries_waits_failure_and_path(tmp_path: Path) -> None:
    async with viewer(tmp_path) as v:
        ATTEMPTS.pop("o-big", None)
        iid = await v.app.start_instance(viewer_order, order_id="o-big", amount=5000)
        await v.app.start_instance(viewer_ticket, ticket="noise")
        await v.page.goto(f"{v.url}/viewer/")
        await v.page.select_option("#workflow-filter", "viewer_order")
        await expect(rows(v.page)).to_have_count(1)
        await v.page.click(f'#instances tr[data-instance-id="{iid}"] a')
        await expect(v.page.locator("#instance-id")).to_have_text(iid)
        status = v.page.locator("#instance-status")
        await expect(status).to_have_text("waiting for message")
        waiting = v.page.locator('#timeline li.step[data-kind="event"]')
        await expect(waiting).to_have_attribute("data-status", "waiting")
        await v.shot("instance-waiting")

        await send_event("approval.o-big", "/tests", {"by": "ops"})
        await expect(status).to_have_text("failed")

        retried = v.page.locator('#timeline li.step[data-kind="activity"]'
                                 '[data-status="completed"]').filter(has_text="reserve_stock")
        await expect(retried.locator(".attempts")).to_have_text("2 attempts")
        await expect(retried.locator("li.retry")).to_have_count(1)
        await expect(retried.locator("li.retry")).to_contain_text(
            "attempt 1 failed: ConnectionError the stock service did not answer")
        await expect(retried.locator(".duration")).to_have_text(re.compile(r"^\d+(\.\d)? m?s$"))

        await expect(waiting).to_have_attribute("data-status", "received")
        await expect(waiting).to_contain_text("received event 'approval.o-big'")

        failed = v.page.locator('#timeline li.step[data-kind="activity"][data-status="failed"]')
        await expect(failed).to_contain_text("charge_card")
        await expect(failed.locator("pre.traceback")).to_be_visible()
        await expect(failed.locator("pre.traceback")).to_contain_text("in charge_card")
        await expect(v.page.locator('#timeline li.step[data-kind="compensation"]'
                                    '[data-status="completed"]')).to_contain_text("viewer_release_stock")

        error = v.page.locator("#error")
        await expect(error.locator(".error-type")).to_have_text("TerminalError")
        await expect(error.locator(".error-message")).to_have_text("card declined for 5000.00")
        await expect(error.locator("pre.traceback")).to_contain_text("Traceback (most recent call")
        await expect(v.page.locator("#input pre")).to_contain_text('"order_id": "o-big"')

        steps = await v.page.locator("#timeline li.step").count()
        nodes = v.page.locator("#diagram svg g.node")
        await expect(nodes).to_have_count(steps)
        await expect(v.page.locator("#diagram svg g.node.outcome-bad")).to_have_count(2)
        await expect(v.page.locator("#diagram svg .retry-count")).to_have_text(["\u21bb1"])
        await expect(v.page.locator("#cancel")).to_have_count(0)  # it has ended
        await v.shot("instance-failed")
        assert v.errors == []


async def test_start_form_is_built_from_the_input_schema(tmp_path: Path) -> None:
    async with viewer(tmp_path) as v:
        await v.page.goto(f"{v.url}/viewer/#/start")
        await v.page.select_option("#workflow-select", "viewer_ticket")
        await expect(v.page.locator("#field-priority")).to_have_attribute("type", "number")
        await expect(v.page.locator("#field-priority")).to_have_value("1")
        await expect(v.page.locator("#field-urgent")).to_have_attribute("type", "checkbox")
        await v.page.fill("#field-ticket", "from-the-form")
        await v.page.fill("#field-priority", "3")
        await v.page.check("#field-urgent")
        await v.shot("start-form")
        await v.page.click("#start-submit")

        await expect(v.page.locator("#instance-status")).to_have_text("waiting for message")
        iid = (await v.page.locator("#instance-id").text_content() or "").strip()
        instance = await v.app.get_instance(iid)
        assert instance is not None
        assert instance["workflow_name"] == "viewer_ticket"
        assert instance["input_data"] == {"ticket": "from-the-form", "priority": 3,
                                          "urgent": True}
        await v.page.click("#nav-list")
        await expect(v.page.locator(f'#instances tr[data-instance-id="{iid}"]')).to_be_visible()

        # a number field takes a float where the schema says "number"
        await v.page.goto(f"{v.url}/viewer/#/start?workflow=viewer_order")
        await v.page.fill("#field-order_id", "o-1")
        await v.page.fill("#field-amount", "12.5")
        await v.page.click("#start-submit")
        await expect(v.page.locator("#instance-status")).to_have_text("waiting for message")
        assert v.errors == []


async def test_cancel_and_retry_buttons(tmp_path: Path) -> None:
    async with viewer(tmp_path) as v:
        waiting = await v.app.start_instance(viewer_ticket, ticket="to-cancel")
        await v.page.goto(f"{v.url}/viewer/#/instances/{waiting}")
        await expect(v.page.locator("#instance-status")).to_have_text("waiting for message")
        await v.page.click("#cancel")
        await expect(v.page.locator("#cancel-confirm")).to_be_visible()
        await v.page.click("#cancel-yes")
        await expect(v.page.locator("#instance-status")).to_have_text("cancelled")
        await expect(v.page.locator('#timeline li.step[data-kind="cancel"]')
                     .last).to_contain_text("cancelled by api_user")
        await v.shot("instance-cancelled")
        instance = await v.app.get_instance(waiting)
        assert instance is not None and instance["status"] == "cancelled"

        BROKEN.add("box-9")
        failed = await v.app.start_instance(viewer_delivery, job="box-9")
        await v.page.goto(f"{v.url}/viewer/#/instances/{failed}")
        await expect(v.page.locator("#instance-status")).to_have_text("failed")
        BROKEN.discard("box-9")
        await v.page.click("#retry")
        await expect(v.page.locator("#instance-status")).to_have_text("completed")
        await expect(v.page.locator("#result pre")).to_have_text('"delivered box-9"')
        await v.shot("instance-retried")
        assert v.errors == []


async def test_authorize_hook_guards_the_viewer(tmp_path: Path) -> None:
    async with viewer(tmp_path, authorize=bearer_token(TOKEN)) as v:
        iid = await v.app.start_instance(viewer_ticket, ticket="secret")
        async with httpx.AsyncClient(base_url=v.url) as client:
            for path in ("/viewer", "/viewer/", "/viewer/assets/core.js", "/api/nodes",
                         f"/api/instances/{iid}/timeline"):
                assert (await client.get(path)).status_code == 401, path
            allowed = {"authorization": f"Bearer {TOKEN}"}
            script = await client.get("/viewer/assets/core.js", headers=allowed)
            assert script.status_code == 200
            assert script.headers["content-type"].startswith("text/javascript")

        answer = await v.page.goto(f"{v.url}/viewer/")
        assert answer is not None and answer.status == 401
        await expect(v.page.locator("#gate")).to_be_visible()
        await expect(v.page.locator("#gate-message")).to_have_text("This node asks for a token.")
        await v.shot("token")
        await v.page.fill("#gate-token", "wrong")
        await v.page.click("#gate-submit")
        await expect(v.page.locator("#gate-message")).to_contain_text("refused")

        await v.page.fill("#gate-token", TOKEN)
        await v.page.click("#gate-submit")
        await expect(v.page.locator("#gate")).to_be_hidden()
        await expect(v.page.locator(f'#instances tr[data-instance-id="{iid}"]')).to_be_visible()
        # a reload keeps the token for the tab
        await v.page.reload()
        await expect(v.page.locator(f'#instances tr[data-instance-id="{iid}"]')).to_be_visible()
        await v.page.click("#sign-out")
        await expect(v.page.locator("#gate")).to_be_visible()
        # only the refusals of the page's files are expected errors
        assert all("401" in error for error in v.errors), v.errors


class _Opaque:
    """A type pydantic cannot describe."""


class _Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class _Line(pydantic.BaseModel):
    sku: str
    qty: int = 1


@workflow
async def viewer_schema(ctx: WorkflowContext, order_id: str, lines: list[_Line],
                        size: _Size = _Size.SMALL, note: str | None = None,
                        _internal: int = 0, handle: _Opaque | None = None,
                        token: object = _Opaque(), **extra: Any) -> None:
    return None


def test_input_schema_is_made_from_the_signature_without_the_context() -> None:
    schema = viewer_schema.input_schema()
    properties = schema["properties"]
    assert list(properties) == ["order_id", "lines", "size", "note", "_internal", "handle",
                                "token"]
    assert schema["required"] == ["order_id", "lines"]
    assert schema["additionalProperties"] is True  # **extra
    assert properties["order_id"]["type"] == "string"
    assert properties["lines"]["items"] == {"$ref": "#/$defs/_Line"}
    assert schema["$defs"]["_Line"]["required"] == ["sku"]
    assert properties["size"]["default"] == "small"
    assert schema["$defs"]["_Size"]["enum"] == ["small", "large"]
    assert properties["_internal"] == {"default": 0, "title": "_internal", "type": "integer"}
    assert "type" not in properties["handle"]  # not describable: any JSON
    assert "default" not in properties["token"]  # a default JSON cannot hold
    assert viewer_ticket.input_schema()["additionalProperties"] is False
    schema["properties"].clear()  # a copy: the next caller gets it whole
    assert viewer_schema.input_schema()["properties"]
