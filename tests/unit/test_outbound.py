"""The outbound policy (blocks/outbound.py): which resolved addresses a call may reach.

Pure: addresses are checked, never connected to. Where a client or a block is exercised, its
resolver answers from a table and its network refuses every connection and records it, so
nothing leaves the process (and a metadata address is never even tried).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import uuid4

import httpcore
import httpx
import pytest

from blocks.context import BlockSettings, RunContext
from blocks.llm import LlmSimpleParams, llm_simple
from blocks.outbound import (
    NEVER_REASON,
    PRIVATE_REASON,
    OutboundPolicy,
    OutboundRefusedError,
    guarded_client,
)
from runner.settings import Settings
from tests.unit.test_blocks_pure import Harness, RecordingLog
from web.cli import _deny_private_by_default

DENY = OutboundPolicy(deny_private=True)
ALLOW = OutboundPolicy(deny_private=False)
# Everything a setting could allow: the metadata rule must still hold.
ALLOW_ALL = OutboundPolicy.from_settings(
    deny_private=True, allow_hosts="metadata.localtest, 0.0.0.0/0, ::/0"
)

METADATA = [
    "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean
    "169.254.170.2",  # AWS ECS task credentials
    "169.254.0.1",
    "fe80::1",
    "fe80::a9fe:a9fe",
    "fd00:ec2::254",  # AWS IPv6
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",  # Azure WireServer
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:a9fe:a9fe",
    "64:ff9b::a9fe:a9fe",  # NAT64
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64, as a /96
    "64:ff9b:1:0:a9:fea9:fe00:0",  # … as a /64 (RFC 6052 skips byte 8)
    "64:ff9b:1:a9:fe:a9fe::",  # … as a /56
    "64:ff9b:1:a9fe:a9:fe00::",  # … as a /48
    "2002:a9fe:a9fe::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254
]
PRIVATE = [
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "fc00::1",
    "fd12:3456::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:10.1.2.3",
    "::ffff:192.168.0.1",
    "::ffff:0.0.0.0",
    "64:ff9b::7f00:1",
    "64:ff9b:1::7f00:1",
    "64:ff9b:1::808:808",  # a translator of this network's own, whatever it maps to
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "224.0.0.1",
    "255.255.255.255",
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", METADATA)
@pytest.mark.parametrize("policy", [ALLOW, DENY, ALLOW_ALL], ids=["allow", "deny", "allow-all"])
def test_link_local_and_metadata_are_refused_whatever_the_settings(
    policy: OutboundPolicy, address: str
) -> None:
    assert policy.refusal("metadata.localtest", address) == NEVER_REASON


@pytest.mark.parametrize("address", PRIVATE)
def test_private_and_loopback_are_refused_only_when_denied(address: str) -> None:
    assert DENY.refusal("peer.localtest", address) == PRIVATE_REASON
    assert ALLOW.refusal("peer.localtest", address) is None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert DENY.refusal("example.com", address) is None


def test_allowed_hosts_are_names_or_cidrs() -> None:
    # Given names (any case, a trailing dot) and CIDRs, IPv6 in brackets or not
    policy = OutboundPolicy.from_settings(
        deny_private=True, allow_hosts=" Allowed.Localtest. ,10.0.0.0/8,[fd12::1], 192.168.1.7 "
    )
    assert policy.allow_hosts == frozenset({"allowed.localtest"})
    # Then a name is allowed whatever it resolves to (but metadata)
    assert policy.refusal("ALLOWED.localtest.", "127.0.0.1") is None
    assert policy.refusal("allowed.localtest", "169.254.169.254") == NEVER_REASON
    assert policy.refusal("other.localtest", "127.0.0.1") == PRIVATE_REASON
    # And a CIDR allows the addresses in it, under any name, in any form
    assert policy.refusal("db.internal", "10.9.8.7") is None
    assert policy.refusal("db.internal", "::ffff:10.9.8.7") is None
    assert policy.refusal("db.internal", "fd12::1") is None
    assert policy.refusal("db.internal", "192.168.1.7") is None
    assert policy.refusal("db.internal", "192.168.1.8") == PRIVATE_REASON
    assert policy.refusal("db.internal", "fd12::2") == PRIVATE_REASON


def test_an_allowed_network_does_not_let_through_another_address_carried_with_it() -> None:
    policy = OutboundPolicy.from_settings(deny_private=True, allow_hosts="10.0.0.0/8")
    assert policy.refusal("api.internal", "10.1.2.3") is None
    # Teredo: relay 10.1.2.3 (allowed), client 127.0.0.1 (not)
    assert policy.refusal("t.localtest", "2001:0:a01:203:8000:ffff:80ff:fffe") == PRIVATE_REASON


def test_a_name_with_one_refused_address_is_refused() -> None:
    with pytest.raises(OutboundRefusedError) as caught:
        DENY.check("rebind.localtest", ["93.184.215.14", "127.0.0.1"])
    assert (caught.value.host, caught.value.address) == ("rebind.localtest", "127.0.0.1")
    DENY.check("example.com", ["93.184.215.14", "2606:4700:4700::1111"])


def test_the_refusal_names_the_caller_the_host_and_what_to_set() -> None:
    refused = OutboundRefusedError("169.254.169.254", "169.254.169.254", NEVER_REASON)
    assert str(refused.by("http.request")) == (
        "http.request to 169.254.169.254 refused: link-local and cloud metadata addresses "
        "are never reached, whatever WEFT_HTTP_DENY_PRIVATE and WEFT_HTTP_ALLOW_HOSTS say"
    )
    named = OutboundRefusedError("2130706433", "127.0.0.1", PRIVATE_REASON)
    assert str(named).startswith("outbound call to 2130706433 (127.0.0.1) refused: private")


class Resolver:
    """Answers host names from a table, and counts the questions (no DNS)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.table[host]


class NoNetwork(httpcore.AsyncNetworkBackend):
    """Refuses every connection, and records where it was asked to connect."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        raise httpcore.ConnectError("no network in unit tests")


TABLE = {
    "metadata.localtest": ["169.254.169.254"],
    "aws6.localtest": ["fd00:ec2::254"],
    "public.localtest": ["203.0.113.7"],
}


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["metadata.localtest", "aws6.localtest"])
async def test_a_name_that_resolves_to_metadata_is_never_connected_to(host: str) -> None:
    # Given weft's client with every private address allowed, on a resolver we control
    network = NoNetwork()
    client = guarded_client(
        ALLOW_ALL, limits=httpx.Limits(), resolve=Resolver(TABLE), network=network
    )
    async with client:
        # When http.request calls a name that resolves to a metadata address
        with pytest.raises(OutboundRefusedError) as caught:
            await Harness(client).call("http.request", {"url": f"http://{host}/latest/"})
    # Then the node fails with a clear error, and no connection was even tried
    assert str(caught.value).startswith(f"http.request to {host} ({TABLE[host][0]}) refused")
    assert NEVER_REASON in str(caught.value)
    assert network.connects == []


@pytest.mark.anyio
async def test_llm_simple_base_url_obeys_the_policy() -> None:
    network = NoNetwork()
    client = guarded_client(DENY, limits=httpx.Limits(), resolve=Resolver(TABLE), network=network)
    settings = BlockSettings(openai_api_key="k", openai_base_url="http://metadata.localtest/v1")
    async with client:
        ctx = RunContext(
            run_id=uuid4(),
            workflow_id=uuid4(),
            node_id="ask",
            attempt=1,
            timeout_s=5.0,
            params=LlmSimpleParams(prompt="hi"),
            http=client,
            artifacts=None,  # type: ignore[arg-type]
            log=RecordingLog(),
            settings=settings,
        )
        with pytest.raises(OutboundRefusedError, match=r"^llm\.simple to metadata\.localtest"):
            await llm_simple.fn({}, ctx)
    assert network.connects == []


@pytest.mark.anyio
async def test_the_checked_address_is_the_one_connected_to() -> None:
    # Given a name that resolves to an allowed address
    network, resolver = NoNetwork(), Resolver(TABLE)
    client = guarded_client(DENY, limits=httpx.Limits(), resolve=resolver, network=network)
    async with client:
        with pytest.raises(httpx.ConnectError):
            await client.get("https://public.localtest:8443/")
    # Then the name was resolved once, and the socket asked for the checked address itself:
    # no second lookup that a rebinding DNS server could answer differently
    assert resolver.asked == ["public.localtest"]
    assert network.connects == [("203.0.113.7", 8443)]


@pytest.mark.parametrize(
    ("given", "deny", "expected"),
    [(None, True, True), (None, False, False), (False, True, False), (True, False, True)],
)
def test_each_command_chooses_only_what_is_unset(
    given: bool | None, deny: bool, expected: bool
) -> None:
    # `weft serve` passes deny=True, `weft up` deny=False; WEFT_HTTP_DENY_PRIVATE wins
    settings = Settings(weft_http_deny_private=given)
    assert _deny_private_by_default(settings, deny=deny).weft_http_deny_private is expected
