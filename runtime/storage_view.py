"""`EddaApp.storage`: the part of Edda's storage object that Edda's docs and examples
use, answered from the journal.

Edda exposes its SQL storage as ``app.storage`` and its examples call its query
methods. Here instances are actors rebuilt from journals, so there are no such
tables to hand out; the queries are served by the app's own query API, in
Edda's shapes, and anything else says what to use instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from datetime import datetime

    from edda.runtime.app import EddaApp

_INSTEAD = ("use the app's own API: app.get_instance, app.get_history, app.find_instances, "
            "app.cancel_workflow, app.retry_workflow, app.publish, app.send_to; writes go "
            "through workflows and activities (ctx.session for your own tables)")


class StorageView:
    """Edda's storage queries, read from this app's database."""

    def __init__(self, app: EddaApp) -> None:
        self._app = app

    async def get_instance(self, instance_id: str) -> dict[str, Any] | None:
        """The instance in Edda's shape, or None."""
        return await self._app.get_instance(instance_id)

    async def get_history(self, instance_id: str) -> list[dict[str, Any]]:
        """The instance's history in Edda's shape, in journal order."""
        return await self._app.get_history(instance_id)

    async def list_instances(
        self,
        limit: int = 50,
        page_token: str | None = None,
        status_filter: str | None = None,
        workflow_name_filter: str | None = None,
        instance_id_filter: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        input_filters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A page of instances, newest first, with Edda's parameter names:
        ``{"instances", "next_page_token", "has_more"}``."""
        return await self._app.find_instances(
            input_filters=input_filters, status=status_filter,
            workflow_name=workflow_name_filter, instance_id=instance_id_filter,
            started_after=started_after, started_before=started_before, limit=limit,
            page_token=page_token)

    async def find_instances(self, **filters: Any) -> dict[str, Any]:
        """`EddaApp.find_instances`."""
        return await self._app.find_instances(**filters)

    def __getattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"app.storage.{name} does not exist here: instances are actors "
                             f"rebuilt from journals, not rows of Edda's tables; {_INSTEAD}")
