"""Integrations of Edda with other libraries; each needs its extra installed.

- `edda.integrations.llamaindex`: durable LlamaIndex workflows
  (``pip install 'edda-actors[llamaindex]'``).
"""
