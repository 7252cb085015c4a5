"""How to install an optional extra of edda-actors, said the same way everywhere.

edda-actors is installed from its source (a checkout or a git URL), not from the
package index; the README's Install section shows both.
"""

from __future__ import annotations

import importlib


def install_hint(extra: str) -> str:
    """The command that adds ``extra`` to an installation made from a checkout."""
    return (f"pip install '/path/to/edda-actors[{extra}]' (from your checkout, or "
            f"'edda-actors[{extra}] @ git+<repository URL>'; see the README's Install section)")


def require(module: str, what: str, extra: str) -> None:
    """Import ``module``, or raise an ``ImportError`` saying that ``what`` needs it and
    how to install the ``extra`` that brings it."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what}: {install_hint(extra)}") from exc
