"""The listening socket under a burst of new connections (a load test opening many at once)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from tests.support import WeftServer

pytestmark = pytest.mark.anyio

# More than Hypercorn's default backlog (100), well under weft's (1024).
BURST = 300
CONNECT_TIMEOUT_S = 0.2


def connect_burst(host: str, port: int) -> tuple[int, list[socket.socket]]:
    """Open BURST connections one after another; returns how many the kernel completed."""
    completed, sockets = 0, []
    for _ in range(BURST):
        sock = socket.socket()
        sock.settimeout(CONNECT_TIMEOUT_S)
        sockets.append(sock)
        try:
            sock.connect((host, port))
        except OSError:
            continue
        completed += 1
    return completed, sockets


async def test_a_burst_of_connections_waits_in_the_backlog_instead_of_being_dropped(
    weft: WeftServer,
) -> None:
    # Called without awaiting, this blocks the event loop: nothing is accepted meanwhile, so
    # only the kernel's backlog holds the new connections. Past it, SYNs are dropped and a
    # client waits out a 1 s retransmit (here: its connect times out).
    address = urlsplit(weft.url)
    assert address.hostname is not None
    assert address.port is not None
    completed, sockets = connect_burst(address.hostname, address.port)
    for sock in sockets:
        sock.close()
    assert completed == BURST
    assert (await weft.client.get("/healthz")).status_code == 200
