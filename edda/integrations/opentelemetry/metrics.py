"""The workflow and activity instruments `OpenTelemetryHooks` records when metrics are on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

#: The instrumentation scope of every span and instrument.
SCOPE = "edda"


class WorkflowMetrics:
    """Counters and duration histograms (seconds) of workflows and activities.

    Workflow instruments carry ``edda.workflow.name``, activity ones
    ``edda.activity.name``; durations and ``edda.activity.executed`` also carry
    the outcome as ``edda.workflow.status`` / ``edda.activity.status``.
    """

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter(SCOPE)
        self.workflow_started = meter.create_counter(
            "edda.workflow.started", unit="{workflow}", description="Workflow instances started")
        self.workflow_completed = meter.create_counter(
            "edda.workflow.completed", unit="{workflow}",
            description="Workflow instances completed")
        self.workflow_failed = meter.create_counter(
            "edda.workflow.failed", unit="{workflow}", description="Workflow instances failed")
        self.activity_executed = meter.create_counter(
            "edda.activity.executed", unit="{activity}",
            description="Activities run (not replayed), whatever their outcome")
        self.activity_cache_hit = meter.create_counter(
            "edda.activity.cache_hit", unit="{activity}",
            description="Activities whose recorded result was replayed")
        self.workflow_duration = meter.create_histogram(
            "edda.workflow.duration", unit="s",
            description="From a workflow's start to its end")
        self.activity_duration = meter.create_histogram(
            "edda.activity.duration", unit="s",
            description="From an activity's first attempt to its outcome")

    def workflow_ended(self, name: str, status: str, seconds: float | None) -> None:
        attributes = {"edda.workflow.name": name}
        if status == "completed":
            self.workflow_completed.add(1, attributes)
        elif status == "failed":
            self.workflow_failed.add(1, attributes)
        if seconds is not None:
            self.workflow_duration.record(max(seconds, 0.0),
                                          {**attributes, "edda.workflow.status": status})

    def activity_ended(self, name: str, status: str, seconds: float) -> None:
        attributes = {"edda.activity.name": name, "edda.activity.status": status}
        self.activity_executed.add(1, attributes)
        self.activity_duration.record(seconds, attributes)
