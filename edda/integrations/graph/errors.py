"""What the pydantic-graph runner raises."""

from __future__ import annotations


class GraphExecutionError(Exception):
    """A durable graph run could not go on: a node failed for good, or the journal
    records a node the graph no longer has.

    Attributes:
        message: What went wrong, naming the node.
        node_name: The node that failed, when one did (its node id, the class
            name). ``__cause__`` holds the node's own error (for retried nodes,
            `edda.RetryExhaustedError` whose cause is the last attempt's error).
    """

    def __init__(self, message: str, node_name: str | None = None) -> None:
        super().__init__(message, node_name)
        self.message = message
        self.node_name = node_name

    def __str__(self) -> str:
        return self.message
