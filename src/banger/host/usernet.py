"""Ordinary users' networks on this host: root's one-time setup and teardown (the bridge,
the user's TAP pool, the nftables rules, the description file, persistence at boot), and
the user daemon's reading side."""

from __future__ import annotations

import dataclasses
import grp
import json
import os
import pwd
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from banger.core import nat, posixacl, usernet
from banger.core.errors import ConfigError, HostError, InvalidInput, PermissionDenied
from banger.core.models import ProgressEvent
from banger.core.usernet import UserNetwork
from banger.host.poolnet import PROC_NET_DEV, link_names
from banger.host.processes import CommandRunner

Progress = Callable[[ProgressEvent], None]
UNIT_NAME = "banger-user-network@.service"


def read_user_network(user: str, users_dir: Path = Path(usernet.USERS_DIR)) -> UserNetwork | None:
    """This user's description, if root set their network up (None: no setup)."""
    path = users_dir / f"{usernet.validate_user_name(user)}.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}",
                          hint="run `sudo banger system setup --user NAME` again") from exc
    net = usernet.parse_user_network(text, source=str(path))
    if net.user != user:
        raise ConfigError(f"{path} describes user {net.user!r}, not {user!r}",
                          hint=f"run `sudo banger system setup --user {user}` again")
    return net


def unit_text(banger: str) -> str:
    """The systemd template unit that re-applies a user's setup at boot (`@NAME`)."""
    return (
        "[Unit]\n"
        "Description=banger network of user %i (bridge, TAPs, nftables)\n"
        "After=network-pre.target\n"
        "Before=network.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart={banger} system setup --user %i --no-persist\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


@dataclass(frozen=True)
class SetupResult:
    network: UserNetwork
    description: str
    persisted: str  # how it comes back after a reboot, or why it does not


@dataclass
class SystemLayout:
    """Where the setup writes (a test points it at a temporary directory)."""

    users_dir: Path = Path(usernet.USERS_DIR)
    systemd_dir: Path = Path("/etc/systemd/system")
    systemd_running: Path = Path("/run/systemd/system")  # exists when systemd is PID 1
    proc_net_dev: Path = PROC_NET_DEV  # the links of the namespace we run in
    tun: Path = Path("/dev/net/tun")  # QEMU, as the user, opens it to attach its TAP
    kvm: Path = Path("/dev/kvm")  # and this, where KVM is real, through its group


def _groups_of(user: str) -> set[str]:
    entry = pwd.getpwnam(user)
    return {grp.getgrgid(gid).gr_name for gid in os.getgrouplist(user, entry.pw_gid)}


class UserNetworks:
    """Root's side: make or remove exactly one user's network."""

    def __init__(
        self, runner: CommandRunner, layout: SystemLayout | None = None, *,
        euid: Callable[[], int] = os.geteuid,
        lookup_uid: Callable[[str], int] = lambda name: pwd.getpwnam(name).pw_uid,
        groups_of: Callable[[str], set[str]] = _groups_of,
        group_name: Callable[[int], str] = lambda gid: grp.getgrgid(gid).gr_name,
        banger: str = "",
    ) -> None:
        self._run = runner
        self._layout = layout or SystemLayout()
        self._euid = euid
        self._lookup_uid = lookup_uid
        self._groups_of = groups_of
        self._group_name = group_name
        self._banger = banger or str(Path(sys.argv[0]).resolve())

    def _require_root(self, verb: str) -> None:
        if self._euid() != 0:
            raise PermissionDenied(f"`banger system {verb}` changes the host's network: it "
                                   "needs root", hint=f"run it as `sudo banger system {verb} ...`")

    def existing(self) -> list[UserNetwork]:
        found = []
        for path in sorted(self._layout.users_dir.glob("*.json")):
            found.append(usernet.parse_user_network(path.read_text(), source=str(path)))
        return found

    async def setup(
        self, user: str, taps: int | None, progress: Progress, *, persist: bool = True,
    ) -> SetupResult:
        self._require_root("setup")
        usernet.validate_user_name(user)
        try:
            uid = self._lookup_uid(user)
        except KeyError:
            raise InvalidInput(f"no user named {user!r} on this host",
                               hint="create the account first (useradd), then run the setup"
                               ) from None
        if uid == 0:
            raise InvalidInput("root's bangerd makes its own network; the setup is for "
                               "ordinary users", hint="pass --user NAME of an ordinary user")
        others = self.existing()
        mine = next((n for n in others if n.user == user), None)
        index = mine.index if mine else usernet.free_index({n.index for n in others})
        count = taps or (len(mine.slots) if mine else usernet.DEFAULT_TAPS)
        net = usernet.plan_user_network(user, uid, index, count)
        needs_acl = self._tun_needs_acl(uid)
        kvm_group = self._kvm_group_to_join(user)
        net = dataclasses.replace(
            net, tun_acl=needs_acl or (mine is not None and mine.tun_acl),
            kvm_group=kvm_group or (mine.kvm_group if mine is not None else ""),
        )
        # Written first: a setup that fails halfway is still on record for teardown (and a
        # second run finishes it).
        description = self._layout.users_dir / f"{user}.json"
        self._layout.users_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        _write_public(description, net.to_json())
        progress(ProgressEvent("description", f"wrote {description}"))
        if mine is not None and (mine.bridge, mine.slots) != (net.bridge, net.slots):
            await self._remove_links(mine, keep=net)
        progress(ProgressEvent("bridge", f"bridge {net.bridge} {net.gateway}/24"))
        await self._ensure_bridge(net)
        progress(ProgressEvent("taps", f"{len(net.slots)} TAPs owned by {user} "
                               f"({sum(s.nat for s in net.slots)} with NAT)"))
        for slot in net.slots:
            await self._ensure_tap(slot.tap, net)
        if needs_acl:
            self._grant_tun(user, uid)
        if kvm_group:
            progress(ProgressEvent("kvm", f"{user} joins group {kvm_group} (/dev/kvm; from "
                                   "their next login)"))
            await self._run.run(["gpasswd", "-a", user, kvm_group], privileged=True)
        progress(ProgressEvent("rules", f"nftables rules; DNS {net.gateway}:53 -> "
                               f":{net.dns_port}"))
        await self._run.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], privileged=True)
        await self._run.run(["nft", "-f", "-"], privileged=True,
                            input=usernet.render_setup_rules(net).encode())
        persisted = await self._persist(user) if persist else "re-applied (--no-persist)"
        progress(ProgressEvent("ready", f"{user} can now run banger without root"))
        return SetupResult(net, str(description), persisted)

    async def teardown(self, user: str | None, progress: Progress) -> list[str]:
        """Remove the network of `user` (None: of every user); the users whose it was."""
        self._require_root("teardown")
        nets = self.existing()
        if user is not None:
            usernet.validate_user_name(user)
            nets = [n for n in nets if n.user == user]
        for net in nets:
            progress(ProgressEvent("teardown", f"removing the network of {net.user} "
                                   f"({net.bridge})"))
            await self._remove_rules(net)
            await self._remove_links(net)
            await self._unpersist(net.user)
            if net.tun_acl:
                self._revoke_tun(net.uid)
            if net.kvm_group:
                await self._run.run(["gpasswd", "-d", net.user, net.kvm_group],
                                    privileged=True, check=False)
            (self._layout.users_dir / f"{net.user}.json").unlink(missing_ok=True)
        return [n.user for n in nets]

    async def _ensure_bridge(self, net: UserNetwork) -> None:
        if net.bridge not in self._links():
            await self._run.run(["ip", "link", "add", net.bridge, "type", "bridge"],
                                privileged=True)
        await self._run.run(["ip", "addr", "replace", f"{net.gateway}/24", "dev", net.bridge],
                            privileged=True)
        await self._run.run(["ip", "link", "set", net.bridge, "up"], privileged=True)

    async def _ensure_tap(self, tap: str, net: UserNetwork) -> None:
        # One that exists is this user's from an earlier setup (the names are banger's), maybe
        # in use by a running VM: it stays.
        if tap not in self._links():
            await self._run.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap",
                                 "user", str(net.uid)], privileged=True)
        await self._run.run(["ip", "link", "set", tap, "master", net.bridge], privileged=True)
        await self._run.run(["ip", "link", "set", tap, "up"], privileged=True)

    async def _remove_links(self, net: UserNetwork, keep: UserNetwork | None = None) -> None:
        kept = {s.tap for s in keep.slots} if keep else set()
        present = self._links()
        for slot in net.slots:
            if slot.tap not in kept and slot.tap in present:
                await self._run.run(["ip", "link", "del", "dev", slot.tap], privileged=True)
        if keep is None and net.bridge in present:
            await self._run.run(["ip", "link", "del", "dev", net.bridge], privileged=True)

    async def _remove_rules(self, net: UserNetwork) -> None:
        listing = await self._run.run(["nft", "-j", "list", "sets", "inet"], privileged=True,
                                      check=False)
        sets = _set_names(listing.stdout) if listing.returncode == 0 else []
        await self._run.run(["nft", "-f", "-"], privileged=True, check=False,
                            input=usernet.render_setup_removal(net, sets).encode())
        for family in (nat.FAMILY, nat.BRIDGE_FAMILY):
            table = await self._run.run(["nft", "list", "table", family, nat.TABLE],
                                        privileged=True, check=False)
            if table.returncode == 0 and nat.table_is_empty(table.stdout):
                await self._run.run(["nft", "delete", "table", family, nat.TABLE],
                                    privileged=True, check=False)

    async def _persist(self, user: str) -> str:
        if not self._layout.systemd_running.is_dir():
            return ("not persisted: systemd is not running here; run `sudo banger system "
                    f"setup --user {user}` again after each boot")
        unit = self._layout.systemd_dir / UNIT_NAME
        _write_public(unit, unit_text(self._banger))
        await self._run.run(["systemctl", "daemon-reload"], privileged=True)
        instance = UNIT_NAME.replace("@", f"@{user}")
        await self._run.run(["systemctl", "enable", instance], privileged=True)
        return f"re-applied at boot by {instance}"

    async def _unpersist(self, user: str) -> None:
        if not self._layout.systemd_running.is_dir():
            return
        instance = UNIT_NAME.replace("@", f"@{user}")
        await self._run.run(["systemctl", "disable", instance], privileged=True, check=False)
        if not self.existing() or all(n.user == user for n in self.existing()):
            (self._layout.systemd_dir / UNIT_NAME).unlink(missing_ok=True)

    def _kvm_group_to_join(self, user: str) -> str:
        """The group that owns /dev/kvm, if the user is not in it yet: "" where there is no
        /dev/kvm, or root's group owns it (then only root may use it, and no group would
        help: the user's VMs run under TCG)."""
        try:
            info = self._layout.kvm.stat()
        except OSError:
            return ""
        if info.st_gid == 0 or not info.st_mode & 0o060:
            return ""
        group = self._group_name(info.st_gid)
        return "" if group in self._groups_of(user) else group

    def _tun_needs_acl(self, uid: int) -> bool:
        """Whether `uid` needs an ACL entry to open /dev/net/tun: not where everyone may
        (most distributions' udev makes it 0666), nor where it has one already."""
        tun = self._layout.tun
        mode = tun.stat().st_mode
        if mode & 0o006 == 0o006:
            return False
        entries = _acl(tun)
        return entries is None or posixacl.user_perm(entries, uid) != 6

    def _grant_tun(self, user: str, uid: int) -> None:
        tun = self._layout.tun
        entries = _acl(tun) or posixacl.from_mode(tun.stat().st_mode)
        try:
            os.setxattr(tun, posixacl.XATTR, posixacl.render(posixacl.with_user(entries, uid, 6)))
        except OSError as exc:
            raise HostError(
                f"cannot let {user} open {tun}: {exc.strerror}",
                hint=f"make {tun} readable and writable by {user} (mode 0666, as udev does on "
                "most distributions), then run the setup again",
            ) from exc

    def _revoke_tun(self, uid: int) -> None:
        tun = self._layout.tun
        entries = _acl(tun)
        if not entries or posixacl.user_perm(entries, uid) is None:
            return
        left = posixacl.without_user(entries, uid)
        if left is None:
            os.removexattr(tun, posixacl.XATTR)
            mode = tun.stat().st_mode & 0o7777
            os.chmod(tun, (mode & ~0o070) | (posixacl.group_obj_perm(entries) << 3))
        else:
            os.setxattr(tun, posixacl.XATTR, posixacl.render(left))

    def _links(self) -> set[str]:
        return link_names(self._layout.proc_net_dev)


def _acl(path: Path) -> list[posixacl.Entry] | None:
    try:
        return posixacl.parse(os.getxattr(path, posixacl.XATTR))
    except OSError:
        return None  # no ACL (ENODATA), or a file system without them


def _set_names(listing: str) -> list[str]:
    try:
        data = json.loads(listing or "{}")
    except ValueError:
        return []
    return [item["set"]["name"] for item in data.get("nftables", [])
            if "set" in item and item["set"].get("table") == nat.TABLE]


def _write_public(path: Path, text: str) -> None:
    """Root-owned and world-readable (0644), replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)
