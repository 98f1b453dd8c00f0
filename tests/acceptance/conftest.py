"""Acceptance fixtures: clusters that `weft up`/`weft serve` made outside a test's tmp_path.

As root, a data folder under pytest's tmp_path (its parents are mode 700) gets its cluster
in a folder of weft's, linked from WEFT_DATA_DIR/pgdata (runner/store/embedded_root.py).
pytest removes old tmp_paths but not what they link to: each test removes those clusters.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.store.embedded_root import cluster_home


def _running(pgdata: Path) -> bool:
    try:
        os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


@pytest.fixture(autouse=True)
def _remove_linked_clusters(request: pytest.FixtureRequest) -> Iterator[None]:
    if os.geteuid() != 0 or "tmp_path" not in request.fixturenames:
        yield
        return
    # Asked for before the test: then it is torn down after this fixture.
    tmp_path: Path = request.getfixturevalue("tmp_path")
    yield
    for link in tmp_path.rglob("pgdata"):
        target = link.resolve()
        # Only a cluster weft placed for this link, and never one still serving.
        if link.is_symlink() and target.parent == cluster_home(link) and not _running(target):
            shutil.rmtree(target, ignore_errors=True)
