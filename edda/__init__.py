"""Edda: durable workflows for Python, on an event-sourced actor runtime.

Write ``@workflow`` async functions that call ``@activity`` functions; every
result is journaled, so after a crash a workflow replays its journal and goes on
without redoing finished work.
"""

from pathlib import Path as _Path

# Installed, the engine folders (runtime/, actors/, journal/, transports/) live
# inside this package. In a source checkout they sit beside it; let imports of
# edda.runtime and friends find them there too, so running from the repo root works.
_checkout = _Path(__file__).resolve().parent.parent
if not _Path(__file__).with_name("runtime").is_dir() and (_checkout / "runtime").is_dir():
    __path__.append(str(_checkout))

# Edda's module paths that share a name with a decorator (edda.activity, edda.workflow,
# edda.compensation) are loaded first, so the names below rebind to the decorators:
# loaded later, by a user's `import edda.workflow`, they would replace them.
import edda.activity as _activity_module  # noqa: F401
import edda.compensation as _compensation_module  # noqa: F401
import edda.workflow as _workflow_module  # noqa: F401
from edda.actors.node import NodeFailedError as NodeFailedError
from edda.actors.node import ServiceStartError as ServiceStartError
from edda.journal.errors import DatabaseUnavailableError as DatabaseUnavailableError
from edda.runtime.activity import Activity as Activity
from edda.runtime.activity import activity as activity
from edda.runtime.app import EddaApp as EddaApp
from edda.runtime.channels import ChannelMessage as ChannelMessage
from edda.runtime.channels import ChannelModeConflictError as ChannelModeConflictError
from edda.runtime.channels import ChannelNotSubscribedError as ChannelNotSubscribedError
from edda.runtime.channels import publish as publish
from edda.runtime.channels import receive as receive
from edda.runtime.channels import send_to as send_to
from edda.runtime.channels import subscribe as subscribe
from edda.runtime.channels import unsubscribe as unsubscribe
from edda.runtime.compensation import CompensationNotFoundError as CompensationNotFoundError
from edda.runtime.compensation import compensation as compensation
from edda.runtime.compensation import on_failure as on_failure
from edda.runtime.compensation import register_compensation as register_compensation
from edda.runtime.context import WorkflowContext as WorkflowContext
from edda.runtime.errors import InstanceTakenOverError as InstanceTakenOverError
from edda.runtime.errors import NonDeterminismError as NonDeterminismError
from edda.runtime.errors import RetryExhaustedError as RetryExhaustedError
from edda.runtime.errors import TerminalError as TerminalError
from edda.runtime.errors import WorkflowCancelledException as WorkflowCancelledException
from edda.runtime.errors import WorkflowNotInitializedError as WorkflowNotInitializedError
from edda.runtime.events import EventTimeoutError as EventTimeoutError
from edda.runtime.events import ReceivedEvent as ReceivedEvent
from edda.runtime.events import send_event as send_event
from edda.runtime.events import wait_event as wait_event
from edda.runtime.hooks import HooksBase as HooksBase
from edda.runtime.hooks import WorkflowHooks as WorkflowHooks
from edda.runtime.names import publish as _publish
from edda.runtime.outbox import send_event_transactional as send_event_transactional
from edda.runtime.relayer import OutboxRelayer as OutboxRelayer
from edda.runtime.retry import RetryPolicy as RetryPolicy
from edda.runtime.serialization import NotSerializableError as NotSerializableError
from edda.runtime.timers import sleep as sleep
from edda.runtime.timers import sleep_until as sleep_until
from edda.runtime.timers import wait_timer as wait_timer
from edda.runtime.timers import wait_until as wait_until
from edda.runtime.workflow import Workflow as Workflow
from edda.runtime.workflow import workflow as workflow
from edda.wsgi import create_wsgi_app as create_wsgi_app

__version__ = "0.1.0"

__all__ = (
    "Activity",
    "ChannelMessage",
    "ChannelModeConflictError",
    "ChannelNotSubscribedError",
    "CompensationNotFoundError",
    "DatabaseUnavailableError",
    "EddaApp",
    "EventTimeoutError",
    "HooksBase",
    "InstanceTakenOverError",
    "NodeFailedError",
    "NonDeterminismError",
    "NotSerializableError",
    "OutboxRelayer",
    "ReceivedEvent",
    "RetryExhaustedError",
    "RetryPolicy",
    "ServiceStartError",
    "TerminalError",
    "Workflow",
    "WorkflowCancelledException",
    "WorkflowContext",
    "WorkflowHooks",
    "WorkflowNotInitializedError",
    "activity",
    "compensation",
    "create_wsgi_app",
    "on_failure",
    "publish",
    "receive",
    "register_compensation",
    "send_event",
    "send_event_transactional",
    "send_to",
    "sleep",
    "sleep_until",
    "subscribe",
    "unsubscribe",
    "wait_event",
    "wait_timer",
    "wait_until",
    "workflow",
)

# The journal stores classes by module: public ones answer to `edda`, not to the module
# they live in today (httpx does the same), so moving one never changes what is stored.
# Dataclasses keep theirs, where pydantic resolves their string annotations;
# edda.runtime.names stores them as `edda:Name` all the same.
_publish(globals(), dataclasses_too=False)
