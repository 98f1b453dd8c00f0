"""A throwaway gcp-storage-emulator for tests: in memory, in-process, on a free port."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from gcp_storage_emulator.server import create_server

READY_TIMEOUT_S = 10.0


@contextmanager
def run_gcs_emulator(bucket: str) -> Iterator[str]:
    """Run an emulator holding an empty `bucket`; yield its base URL (http://127.0.0.1:PORT).

    The server runs in a thread of this process and is stopped on exit from the block.
    """
    # Port 0 lets the OS pick a free port at bind time, so parallel test processes never race
    # for one; the port actually bound is read back from the server.
    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=bucket)
    api_thread = server._api
    # A daemon thread cannot keep the interpreter alive if a test run is interrupted
    # before stop() is reached.
    api_thread.daemon = True
    server.start()
    try:
        port = api_thread._httpd.server_address[1]
        url = f"http://127.0.0.1:{port}"
        _wait_until_ready(f"{url}/storage/v1/b/{bucket}")
        yield url
    finally:
        server.stop()


def _wait_until_ready(probe_url: str) -> None:
    """Poll the emulator until it serves the bucket, or fail after READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(probe_url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"gcp-storage-emulator did not answer {probe_url}") from exc
        if time.monotonic() > deadline:
            raise RuntimeError(f"gcp-storage-emulator did not answer {probe_url}")
        time.sleep(0.01)
