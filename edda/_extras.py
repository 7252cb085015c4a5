"""How to install an optional extra of edda-actors, said the same way everywhere.

edda-actors is installed from its source (a checkout or a git URL), not from the
package index; the README's Install section shows both.
"""

from __future__ import annotations


def install_hint(extra: str) -> str:
    """The command that adds ``extra`` to an installation made from a checkout."""
    return (f"pip install '/path/to/edda-actors[{extra}]' (from your checkout, or "
            f"'edda-actors[{extra}] @ git+<repository URL>'; see the README's Install section)")
