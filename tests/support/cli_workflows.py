"""A workflow for the `edda serve` and `edda viewer` tests (tests/test_cli.py)."""

from __future__ import annotations

from edda import WorkflowContext, workflow


@workflow
async def cli_served(ctx: WorkflowContext, n: int) -> int:
    return n + 1
