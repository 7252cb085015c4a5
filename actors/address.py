"""Actor addresses: the transport subjects of one database's cluster.

Everything lives under ``edda.<cluster id>``, the id the database was made with,
so the clusters of several databases can share one NATS:

- ``part.<n>``: mail for the instances of partition ``n``. Only the partition's
  owner subscribes, so a message sent to an instance's address reaches the one
  node that runs it, wherever that is, and nobody else.
- ``nodes``: membership news, heard by every node.
- ``node.<id>``: one node's own address (liveness probes).

What travels to a partition is `InstanceMail`, a tagged msgspec struct that
batches the instance ids a sender had for that partition at the moment.
"""

from __future__ import annotations

import re

import msgspec

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class InstanceMail(msgspec.Struct, frozen=True, tag="instance_mail"):
    """Instances of one partition to wake (the database gained something for them)
    and instances whose cancel was committed."""

    wake: list[str] = []
    cancel: list[str] = []


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(InstanceMail)


def encode_mail(mail: InstanceMail) -> bytes:
    return _encoder.encode(mail)


def decode_mail(data: bytes) -> InstanceMail:
    """Decode a partition message.

    Raises:
        msgspec.DecodeError: If it is not one.
    """
    return _decoder.decode(data)


class Addresses:
    """The subjects of the cluster ``cluster_id``."""

    def __init__(self, cluster_id: str) -> None:
        if not cluster_id or _UNSAFE.search(cluster_id):
            raise ValueError(f"cluster id {cluster_id!r} cannot be a subject token")
        self.prefix = f"edda.{cluster_id}"
        #: Where membership news goes.
        self.members = f"{self.prefix}.nodes"

    def partition(self, partition: int) -> str:
        """The address of the instances of ``partition``."""
        return f"{self.prefix}.part.{partition}"

    def node(self, node_id: str) -> str:
        """The address of one node."""
        return f"{self.prefix}.node.{_UNSAFE.sub('_', node_id)}"
