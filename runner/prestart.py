"""Starting the embedded PostgreSQL early, before the heavy imports of a command: the two
overlap, and `weft up` is healthy sooner. Light on purpose: it imports nothing heavy."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path


def prestart_embedded_database() -> None:
    """With DATABASE_URL unset, start the embedded server in a thread right away; the
    system's own start then finds it running (pgserver shares one server per data dir)."""
    if os.environ.get("DATABASE_URL", "").strip():
        return
    # As Settings reads it: unset, empty or blank means the default.
    value = os.environ.get("WEFT_DATA_DIR", "")
    data_dir = Path(value if value.strip() else ".weft").resolve()

    def start() -> None:
        from runner.store.embedded import start_embedded_sync

        with contextlib.suppress(Exception):  # the real start reports any problem
            start_embedded_sync(data_dir / "pgdata")

    threading.Thread(target=start, name="embedded-db-prestart", daemon=True).start()
