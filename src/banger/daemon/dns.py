"""DNSService: the `.vm` zone of this installation, served on the bridge address.

The zone is rebuilt from the store whenever a VM changes (VMService notifies us), so a name
resolves from the moment its VM is running until it stops or goes away. Other names are
forwarded to the host's resolvers for the host itself and for guests with NAT (their resolver
is the bridge address), and refused for everyone else: a guest without NAT has no way out, so
it gets no DNS tunnel out either. A guest with an egress allowlist gets answers for its
allowed names only, and the addresses in them are added to its allow set (for the answer's
TTL) before the answer reaches it. Source addresses can be trusted: the bridge rules drop
every frame a guest sends from an address that is not its own."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence

from banger.core import dns
from banger.core.config import Config
from banger.core.egress import EgressAllow, allow_seconds, parse_egress_allow
from banger.core.models import VM, Check, VMState
from banger.daemon.store import Store
from banger.host.dns import DNSListener, Forwarder, ResolvedLinks

log = logging.getLogger("banger.dns")

DNS_PORT = 53
_LIVE = {VMState.STARTING, VMState.RUNNING, VMState.PAUSED, VMState.ERROR}
# (vm id, [(address, seconds)]): let that guest reach these addresses.
Allower = Callable[[str, Sequence[tuple[str, int]]], Awaitable[None]]


class DNSService:
    def __init__(
        self, *, config: Config, store: Store, listener: DNSListener, forwarder: Forwarder,
        resolved: ResolvedLinks, resolv_conf: Callable[[], str],
        allow: Allower, port: int = DNS_PORT,
    ) -> None:
        """`allow`: how addresses from answers get into a guest's allow set. `port`: where
        to listen (pool mode: the user's unprivileged port, root's rules redirect 53 to it)."""
        self._config = config
        self.port = port
        self._store = store
        self._listener = listener
        self._forwarder = forwarder
        self._resolved = resolved
        self._resolv_conf = resolv_conf
        self.zone: dict[str, str] = {}
        self._forward_for: set[str] = set()
        self._allowlists: dict[str, tuple[str, EgressAllow]] = {}  # guest ip -> (vm id, ...)
        self._allow = allow
        self.serving = False
        self.error = ""
        self._routed = False

    # The zone

    def refresh(self) -> None:
        vms = self._store.list_vms()
        self.zone = {
            vm.name: vm.ip for vm in vms if vm.state in (VMState.RUNNING, VMState.PAUSED)
        }
        self._forward_for = {self._config.bridge_ip} | {
            vm.ip for vm in vms if vm.nat and vm.state in _LIVE and vm.pid is not None
        }
        self._allowlists = {
            vm.ip: (vm.id, parse_egress_allow(vm.egress_allow)) for vm in vms
            if not vm.nat and vm.egress_allow and vm.state in _LIVE and vm.pid is not None
        }

    async def on_vm_event(self, vm: VM) -> None:
        self.refresh()

    # Serving

    async def start(self) -> None:
        self.refresh()
        try:
            await self._listener.start(self._config.bridge_ip, self.port, self.handle)
        except OSError as exc:
            self.error = f"cannot listen on {self._config.bridge_ip}:{self.port}: {exc}"
            log.warning("DNS server not started: %s", self.error)
            return
        self.serving = True
        log.info("serving .vm on %s:%d", self._config.bridge_ip, self.port)

    async def close(self) -> None:
        await self._listener.close()
        self.serving = False
        if self._routed:
            await self._resolved.revert(self._config.bridge_name)
            self._routed = False

    async def on_bridge_ready(self) -> None:
        """Route `.vm` to us in systemd-resolved, where it runs (the link must exist)."""
        if not self.serving or not self._resolved.available():
            return
        try:
            await self._resolved.route(self._config.bridge_name, self._config.bridge_ip, dns.ZONE)
        except Exception as exc:
            log.warning("could not wire systemd-resolved for .vm: %s", exc)
            return
        self._routed = True

    def upstreams(self) -> list[tuple[str, int]]:
        if self._config.dns_upstreams is not None:
            servers = list(self._config.dns_upstreams)
        else:
            servers = dns.nameservers(self._resolv_conf(), exclude={self._config.bridge_ip})
        return [(server, DNS_PORT) for server in servers]

    def _may_forward(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return client in self._forward_for or address.is_loopback

    async def handle(self, packet: bytes, client: str) -> bytes | None:
        allowlist = self._allowlists.get(client)
        may_forward = self._may_forward(client) or allowlist is not None
        upstreams = self.upstreams() if may_forward else []
        decision = dns.respond(packet, self.zone.get, may_forward=bool(upstreams))
        if not isinstance(decision, dns.Forward):
            return decision.packet if decision is not None else None
        if allowlist is not None and not self._may_forward(client):
            return await self._forward_allowed(packet, decision.query, upstreams, *allowlist)
        answer = await self._forwarder.forward(packet, decision.query, upstreams)
        return answer if answer is not None else dns.servfail(decision.query)

    async def _forward_allowed(
        self, packet: bytes, query: dns.Query, upstreams: list[tuple[str, int]], vm_id: str,
        allowlist: EgressAllow,
    ) -> bytes:
        if not allowlist.permits_name(query.question.name):
            return dns.refused(query)
        answer = await self._forwarder.forward(packet, query, upstreams)
        if answer is None:
            return dns.servfail(query)
        addresses = [(ip, allow_seconds(ttl)) for ip, ttl in dns.answer_addresses(answer)]
        if addresses:
            try:
                await self._allow(vm_id, addresses)
            except Exception as exc:
                # An answer the guest could not use would only look like a broken network.
                log.warning("could not allow %s for a guest: %s", query.question.name, exc)
                return dns.servfail(query)
        return answer

    # Doctor

    def checks(self) -> list[Check]:
        where = f"{self._config.bridge_ip}:{self.port}"
        if self.port != DNS_PORT:
            where += f" (port {DNS_PORT} redirected there by root's rules)"
        if self.serving:
            server = Check("dns server", "ok", f"serving .vm on {where}", required=False)
        else:
            server = Check(
                "dns server", "warn", self.error or "not started",
                "port 53 needs root: run bangerd as root, or allow it for users with "
                "`sysctl -w net.ipv4.ip_unprivileged_port_start=53`", False,
            )
        recipe = (
            f"resolve by hand with `dig @{self._config.bridge_ip} NAME.vm`; for the whole "
            f"host add `server=/vm/{self._config.bridge_ip}` to dnsmasq, or put "
            f"`nameserver {self._config.bridge_ip}` first in /etc/resolv.conf "
            "(bangerd forwards other names for the host)"
        )
        if not self._resolved.available():
            routing = Check(
                "dns routing", "warn", "no systemd-resolved: the host does not route .vm to "
                "bangerd by itself", recipe, False,
            )
        elif self._routed:
            routing = Check(
                "dns routing", "ok",
                f"systemd-resolved sends .vm to {where} via {self._config.bridge_name}",
                required=False,
            )
        else:
            routing = Check(
                "dns routing", "ok",
                f"systemd-resolved: .vm is routed to {where} once {self._config.bridge_name} "
                "exists (first VM start)", required=False,
            )
        return [server, routing]
