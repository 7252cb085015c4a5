"""The app of the ASGI workers test: ``uvicorn tests.support.asgi_workers_app:app
--workers 4``, every worker process a node on the database ``EDDA_DB_URL``."""

from __future__ import annotations

import os

from edda import EddaApp
from tests.support.cluster_workflows import await_go

app = EddaApp("workers", os.environ["EDDA_DB_URL"], workflows=[await_go],
              recovery_interval=60.0)
