"""The SQL schema: the journal and the tables kept beside it.

Every table is prefixed ``edda_`` so it can share a database with the user's own
tables (activities write to both in one transaction). Times are UNIX seconds in
double precision: the same on SQLite and PostgreSQL, cheap to compare, and
turned into aware datetimes at the API.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_version = sa.Table(
    "edda_schema",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)

def _journal_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("instance_id", sa.String(255), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )


#: The append-only journal: one row per entry, keyed (instance_id, seq).
journal = _journal_table("edda_journal")

#: A projection of each journal, changed in the same transaction as the entry
#: that causes the change, plus the instance's owner and fencing epoch.
instances = sa.Table(
    "edda_instances",
    metadata,
    sa.Column("instance_id", sa.String(255), primary_key=True),
    sa.Column("workflow_name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("current_activity_id", sa.String(255), nullable=True),
    sa.Column("source_hash", sa.String(64), nullable=True),
    sa.Column("owner_service", sa.String(255), nullable=True),
    sa.Column("continued_from", sa.String(255), nullable=True),
    #: The node whose actor runs the instance now (None: passivated or never run).
    sa.Column("owner_node", sa.String(255), nullable=True),
    #: The partition epoch its last activation ran at (for tools; fencing uses the
    #: partition's own row).
    sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),
    #: ``partition_of(instance_id)``: which partition lease covers the instance.
    sa.Column("partition", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    #: The instance's cancel mailbox: JSON {by, at, previous_status} once requested.
    sa.Column("cancel_request", sa.Text, nullable=True),
)
sa.Index("edda_instances_status_name", instances.c.status, instances.c.workflow_name)
sa.Index("edda_instances_started", instances.c.started_at, instances.c.instance_id)
sa.Index("edda_instances_owner", instances.c.owner_node)
instances_partition_index = sa.Index("edda_instances_partition", instances.c.partition,
                                     instances.c.status)

#: Node leases: the live members among which partitions are spread.
nodes = sa.Table(
    "edda_nodes",
    metadata,
    sa.Column("node_id", sa.String(255), primary_key=True),
    sa.Column("service_name", sa.String(255), nullable=False),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("proc_start", sa.String(64), nullable=False, server_default=""),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
)

#: Partition leases: a fixed number of rows, made with the database. A partition's
#: instances are run by its owner while ``expires_at`` (the database's clock) has
#: not passed; every journal append checks ``owner_node`` and ``epoch`` (fencing).
partitions = sa.Table(
    "edda_partitions",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner_node", sa.String(255), nullable=True),
    sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expires_at", sa.Double, nullable=False, server_default="0"),
)

#: The identity of the database's cluster: one row, made with the database. The
#: nodes of one database put it in their transport subjects, so clusters of
#: different databases can share one NATS without hearing each other.
cluster = sa.Table(
    "edda_cluster",
    metadata,
    sa.Column("cluster_id", sa.String(32), primary_key=True),
)

#: Durable waits in progress: a timer, or an event wait (``key`` = event type).
waits = sa.Table(
    "edda_waits",
    metadata,
    sa.Column("instance_id", sa.String(255), primary_key=True),
    sa.Column("position", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key", sa.String(255), nullable=True),
    sa.Column("deadline", sa.Double, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
)
sa.Index("edda_waits_key", waits.c.kind, waits.c.key)
sa.Index("edda_waits_deadline", waits.c.deadline)

#: CloudEvents accepted by the runtime, kept for the retention period.
events = sa.Table(
    "edda_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("type", sa.String(255), nullable=False),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("data_bytes", sa.LargeBinary, nullable=True),
    sa.Column("target_instance_id", sa.String(255), nullable=True),
    sa.Column("published_at", sa.Double, nullable=False),
)
sa.Index("edda_events_type", events.c.type, events.c.id)
sa.Index("edda_events_published", events.c.published_at)

#: Which instance consumed which event: each event reaches each instance once.
event_deliveries = sa.Table(
    "edda_event_deliveries",
    metadata,
    sa.Column("instance_id", sa.String(255), primary_key=True),
    sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("delivered_at", sa.Double, nullable=False),
)
sa.Index("edda_event_deliveries_event", event_deliveries.c.event_id)

#: Channel messages. A competing message is claimed by one instance, then deleted
#: when its receipt is journaled; a broadcast message stays until retention ends.
channel_messages = sa.Table(
    "edda_channel_messages",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("message_id", sa.String(64), nullable=False, unique=True),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("data", sa.Text, nullable=True),
    sa.Column("data_bytes", sa.LargeBinary, nullable=True),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("target_instance_id", sa.String(255), nullable=True),
    sa.Column("published_at", sa.Double, nullable=False),
    sa.Column("claimed_by", sa.String(255), nullable=True),
)
sa.Index("edda_channel_messages_channel", channel_messages.c.channel, channel_messages.c.id)
sa.Index("edda_channel_messages_claimed", channel_messages.c.claimed_by)
#: A competing receive's lookups: its own claim, or the oldest unclaimed message.
channel_queue_index = sa.Index("edda_channel_messages_queue", channel_messages.c.channel,
                               channel_messages.c.claimed_by, channel_messages.c.id)
sa.Index("edda_channel_messages_published", channel_messages.c.published_at)

#: Channel subscriptions; ``address`` is the channel a direct subscription maps to.
subscriptions = sa.Table(
    "edda_subscriptions",
    metadata,
    sa.Column("instance_id", sa.String(255), primary_key=True),
    sa.Column("channel", sa.String(255), primary_key=True),
    sa.Column("address", sa.String(255), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("since", sa.Double, nullable=False),
)
sa.Index("edda_subscriptions_address", subscriptions.c.address)

#: Which subscriber received which broadcast message.
channel_deliveries = sa.Table(
    "edda_channel_deliveries",
    metadata,
    sa.Column("instance_id", sa.String(255), primary_key=True),
    sa.Column("message_row", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
              primary_key=True),
)
sa.Index("edda_channel_deliveries_message", channel_deliveries.c.message_row)

#: The transactional outbox: CloudEvents committed with an activity (or a body
#: transaction) and published by the relayer. ``status``: pending -> processing
#: -> published, or back to pending with a later ``next_attempt_at``, or dead
#: (attempts exhausted), invalid (the broker refused it) or expired (too old).
#: A ``processing`` row whose ``claimed_until`` passed belongs to a relayer that
#: died; any relayer takes it again.
outbox = sa.Table(
    "edda_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("event_type", sa.String(255), nullable=False),
    sa.Column("event_source", sa.String(255), nullable=False),
    sa.Column("data", sa.Text, nullable=True),
    sa.Column("data_bytes", sa.LargeBinary, nullable=True),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("instance_id", sa.String(255), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Double, nullable=False),
    sa.Column("claimed_by", sa.String(255), nullable=True),
    sa.Column("claimed_until", sa.Double, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("published_at", sa.Double, nullable=True),
    # The event's CloudEvent extension attributes as JSON (such as a traceparent).
    sa.Column("extensions", sa.Text, nullable=True),
)
sa.Index("edda_outbox_due", outbox.c.status, outbox.c.next_attempt_at)

#: One row per running journal writer: the token of its last committed batch, read
#: back when a connection dropped during COMMIT to learn whether the batch committed.
writer_marks = sa.Table(
    "edda_writer_marks",
    metadata,
    sa.Column("node_id", sa.String(255), primary_key=True),
    sa.Column("token", sa.String(32), nullable=False),
    sa.Column("stamped_at", sa.Double, nullable=False, server_default="0"),
)

#: Journals of instances that continued as new (``ctx.recur``).
journal_archive = _journal_table("edda_journal_archive")

#: Statuses from which an instance still has work to do.
UNFINISHED_STATUSES = ("running", "compensating")

#: Statuses of an instance that waits durably (it may be passivated).
WAITING_STATUSES = ("waiting_for_timer", "waiting_for_message", "waiting_for_event")
