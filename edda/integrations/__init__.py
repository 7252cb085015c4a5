"""Integrations of Edda with other libraries; each needs its extra installed.

- `edda.integrations.llamaindex`: durable LlamaIndex workflows
  (``pip install 'edda-actors[llamaindex]'``).
- `edda.integrations.mcp`: durable workflows as AI tools over the Model Context
  Protocol (``pip install 'edda-actors[mcp]'``).
- `edda.integrations.graph`: durable pydantic-graph graphs, a node per activity
  (``pip install 'edda-actors[graph]'``).
- `edda.integrations.mirascope`: durable LLM calls and agents through Mirascope
  (``pip install 'edda-actors[mirascope]'``).
- `edda.integrations.opentelemetry`: spans and metrics of workflows and
  activities (``pip install 'edda-actors[otel]'``).
"""
