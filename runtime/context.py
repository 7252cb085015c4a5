"""`WorkflowContext`: what a workflow and its activities see of their instance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edda.runtime.replay import InstanceRun


class WorkflowContext:
    """The context of one workflow instance, passed to the workflow and its activities.

    Attributes:
        instance_id: The instance's id.
        workflow_name: The workflow's registered name.
        worker_id: The id of the node running the instance.
        executed_activity_ids: Positions of the activities this run has passed.
    """

    def __init__(self, run: InstanceRun, *, worker_id: str, hooks: Any = None) -> None:
        self._run = run
        self.instance_id = run.actor.instance_id
        self.workflow_name = run.actor.workflow_name
        self.worker_id = worker_id
        self.hooks = hooks
        self.executed_activity_ids: set[str] = set()
        self._counters: dict[str, int] = {}
        self._calls = 0
        self._positions: set[str] = set()

    @property
    def is_replaying(self) -> bool:
        """True while the workflow is re-running calls its journal already records.

        It turns False at the first durable call the journal does not hold yet,
        so code guarded by ``if not ctx.is_replaying`` runs once per real step.
        """
        return self._calls < self._run.index.recorded_calls

    def _reserve(self, name: str, explicit_id: str | None) -> tuple[str, int]:
        """Take the position id and call number of a durable call, when it is made.

        Raises:
            ValueError: If an explicit id is empty or was already used in this run.
        """
        if explicit_id is None:
            n = self._counters.get(name, 0) + 1
            self._counters[name] = n
            position = f"{name}:{n}"
        else:
            if not isinstance(explicit_id, str) or not explicit_id:
                raise ValueError(f"activity_id must be a non-empty string, got {explicit_id!r}")
            position = explicit_id
        if position in self._positions:
            raise ValueError(
                f"position {position!r} is used twice in workflow {self.workflow_name!r}; "
                "each durable call needs its own id"
            )
        self._positions.add(position)
        call = self._calls
        self._calls += 1
        return position, call

    def __repr__(self) -> str:
        return (
            f"WorkflowContext(instance_id={self.instance_id!r}, "
            f"workflow_name={self.workflow_name!r}, "
            f"executed_activities={len(self.executed_activity_ids)}, "
            f"is_replaying={self.is_replaying})"
        )
