"""Outbound calls that cannot be turned against the host: which addresses a block may reach.

The shared httpx client connects through `GuardedNetwork`: it resolves the host itself,
checks every address against `OutboundPolicy`, and connects to the checked address, so the
check holds for every redirect hop (each new host is a new connection) and a DNS answer that
changes between check and connect (rebinding) is never asked for. Any spelling of an address
(`2130706433`, `0x7f000001`, `127.1`, `[::ffff:127.0.0.1]`) is checked as what it resolves to.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port → the addresses to try, in order (anyio.getaddrinfo by default).
Resolve = Callable[[str, int], Awaitable[list[str]]]

# Never reached, whatever the settings say: the host's own cloud credentials live here.
NEVER: dict[str, str] = {
    "169.254.0.0/16": "IPv4 link-local (AWS, GCP, Azure, OCI, DigitalOcean metadata)",
    "fe80::/10": "IPv6 link-local",
    "fd00:ec2::254/128": "AWS metadata (IPv6)",
    "100.100.100.200/32": "Alibaba Cloud metadata",
    "168.63.129.16/32": "Azure WireServer",
    "192.0.0.192/32": "Oracle Cloud metadata (classic)",
}
# Refused when WEFT_HTTP_DENY_PRIVATE is true, unless WEFT_HTTP_ALLOW_HOSTS allows them.
PRIVATE: dict[str, str] = {
    "0.0.0.0/8": "this network (0.0.0.0 reaches the host itself)",
    "10.0.0.0/8": "private",
    "100.64.0.0/10": "carrier-grade NAT",
    "127.0.0.0/8": "loopback",
    "172.16.0.0/12": "private",
    "192.0.0.0/24": "IETF protocol assignments",
    "192.168.0.0/16": "private",
    "198.18.0.0/15": "benchmarking",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved and broadcast",
    "::/96": "unspecified, loopback and IPv4-compatible",
    "100::/64": "discard-only",
    "fc00::/7": "unique local",
    "fec0::/10": "site-local",
    "64:ff9b:1::/48": "local-use NAT64 (a translator in this network)",
    "ff00::/8": "multicast",
}
_NEVER = tuple(ipaddress.ip_network(cidr) for cidr in NEVER)
_PRIVATE = tuple(ipaddress.ip_network(cidr) for cidr in PRIVATE)
# The well-known NAT64 prefix carries the IPv4 address in its last 32 bits. The local-use
# one (RFC 8215) may be a /48, /56, /64 or /96 of a translator in this network, which puts
# it elsewhere (RFC 6052): every place it may be is checked.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
# Where RFC 6052 puts the IPv4 address's bytes for each prefix length (byte 8 is reserved).
_NAT64_BYTES = ((6, 7, 9, 10), (7, 9, 10, 11), (9, 10, 11, 12), (12, 13, 14, 15))

NEVER_REASON = (
    "link-local and cloud metadata addresses are never reached, whatever "
    "WEFT_HTTP_DENY_PRIVATE and WEFT_HTTP_ALLOW_HOSTS say"
)
PRIVATE_REASON = (
    "private and loopback addresses are refused while WEFT_HTTP_DENY_PRIVATE is true "
    "(WEFT_HTTP_ALLOW_HOSTS lists host names and CIDRs allowed)"
)


class OutboundRefusedError(Exception):
    """An outbound call was refused: its address may not be reached from here."""

    def __init__(self, host: str, address: str, reason: str, caller: str = "outbound call"):
        self.host, self.address, self.reason, self.caller = host, address, reason, caller
        target = host if host == address else f"{host} ({address})"
        super().__init__(f"{caller} to {target} refused: {reason}")

    def by(self, caller: str) -> OutboundRefusedError:
        """The same refusal, told in the name of the block that made the call."""
        return OutboundRefusedError(self.host, self.address, self.reason, caller)


def _in(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _forms(address: IPAddress) -> list[IPAddress]:
    """The address, and the IPv4 addresses it carries (mapped, NAT64, 6to4, Teredo)."""
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)
        elif address.sixtofour is not None:
            forms.append(address.sixtofour)
        elif address.teredo is not None:  # its relay server and its (obfuscated) client
            forms.extend(address.teredo)
        elif address in _NAT64:
            forms.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        elif address in _LOCAL_NAT64:
            packed = address.packed
            forms.extend(ipaddress.IPv4Address(bytes(packed[i] for i in at)) for at in _NAT64_BYTES)
    return forms


def _host_key(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which addresses outbound calls may reach; `refusal` is pure (no I/O)."""

    deny_private: bool = False
    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, *, deny_private: bool, allow_hosts: str) -> OutboundPolicy:
        """From WEFT_HTTP_DENY_PRIVATE and WEFT_HTTP_ALLOW_HOSTS (host names and CIDRs)."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in filter(None, (_host_key(e) for e in allow_hosts.split(","))):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry)
        return cls(deny_private, frozenset(names), tuple(networks))

    def refusal(self, host: str, address: str) -> str | None:
        """Why `host`, resolved to `address`, may not be reached; None when it may."""
        forms = _forms(ipaddress.ip_address(address))
        if any(_in(form, _NEVER) for form in forms):
            return NEVER_REASON
        private = [form for form in forms if _in(form, _PRIVATE)]
        if not self.deny_private or not private:
            return None
        # Allowed by name, or each private form by a network (one allowed form of an
        # address that also carries another must not let that one through).
        if _host_key(host) in self.allow_hosts or all(
            _in(form, self.allow_networks) for form in private
        ):
            return None
        return PRIVATE_REASON

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Raise OutboundRefusedError if any address `host` resolved to is refused: a name
        that also points somewhere refused is not trusted with the others."""
        for address in addresses:
            reason = self.refusal(host, address)
            if reason is not None:
                raise OutboundRefusedError(_host_key(host), address, reason)


async def resolve_host(host: str, port: int) -> list[str]:
    """The host's addresses, as the system resolver gives them (an IP literal as is)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return [host]
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the policy at connect time: resolve, check, connect
    to the checked address (TLS still verifies the host name httpcore asked for)."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolve: Resolve = resolve_host,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self._resolve = resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # One deadline for resolving and connecting, as httpcore's own backend has.
        try:
            with anyio.fail_after(timeout):
                try:
                    addresses = await self._resolve(host, port)
                except OSError as exc:
                    raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
                if not addresses:
                    raise httpcore.ConnectError(f"{host} resolved to no address")
                self.policy.check(host, addresses)
                return await self._connect_any(addresses, port, local_address, socket_options)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc

    async def _connect_any(
        self,
        addresses: list[str],
        port: int,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.AsyncNetworkStream:
        last: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None  # addresses is never empty here
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("outbound calls over unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a connection pool whose connections go through GuardedNetwork.

    Environment proxies are not used (httpx ignores them when a transport is given): a proxy
    would resolve and connect on our behalf, past the check.
    """

    def __init__(self, network: GuardedNetwork, *, limits: httpx.Limits) -> None:
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, limits=limits)
        # httpx offers no public way to choose the pool's network backend (httpx 0.28).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=network,
        )


def guarded_client(
    policy: OutboundPolicy,
    *,
    limits: httpx.Limits,
    resolve: Resolve = resolve_host,
    network: httpcore.AsyncNetworkBackend | None = None,
    **client_args: Any,
) -> httpx.AsyncClient:
    """An AsyncClient whose every connection (redirects included) obeys `policy`;
    `resolve` and `network` replace the resolver and the sockets (tests)."""
    guarded = GuardedNetwork(policy, resolve=resolve, inner=network)
    return httpx.AsyncClient(transport=GuardedTransport(guarded, limits=limits), **client_args)
