"""Install what the test suite needs beyond pip: Debian's chromium, for the browser tests
(Playwright drives it; no browser is downloaded). Part of the README's test command, so
that it works on a fresh machine: `pip install -e ".[dev]" && python -m tests.prepare && pytest`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def main() -> int:
    if CHROMIUM.exists():
        return 0
    if shutil.which("apt-get") is None:
        print(f"tests.prepare: {CHROMIUM} is missing and apt-get is not here", file=sys.stderr)
        return 1
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("tests.prepare: installing chromium for the browser tests (apt-get)", flush=True)
    subprocess.run([*sudo, "apt-get", "update"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "chromium"], check=True, env=env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
