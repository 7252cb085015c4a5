"""The app `edda serve tests.support.cli_app:app` runs: its database is $EDDA_DB_URL."""

from __future__ import annotations

import os

from edda import EddaApp
from tests.support import cli_workflows  # noqa: F401  (registers the workflow)

app = EddaApp("cli-serve", os.environ["EDDA_DB_URL"])
