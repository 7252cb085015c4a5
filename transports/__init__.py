"""Message transports between actors and nodes: at-most-once by contract.

Durable delivery is the database's job; a transport only makes things fast.
"""

from edda.transports.base import Message as Message
from edda.transports.base import NoRespondersError as NoRespondersError
from edda.transports.base import Subscription as Subscription
from edda.transports.base import Transport as Transport
from edda.transports.base import TransportClosedError as TransportClosedError
from edda.transports.inproc import InProcTransport as InProcTransport
from edda.transports.nats import NatsTransport as NatsTransport

__all__ = ("InProcTransport", "Message", "NatsTransport", "NoRespondersError", "Subscription",
           "Transport", "TransportClosedError")
