"""End-to-end fixture: a network namespace made by the test session, a bangerd inside it with
its own XDG dirs, the real CLI, and real guests (QEMU; TCG on hosts without real KVM).

The Debian test image is built once (by banger itself, outside the namespace, since the
build needs the Debian mirror) and cached by recipe version under BANGER_TEST_IMAGE_CACHE,
then registered into each test environment. Everything the session creates (namespace,
bridge, TAPs, VMs, daemons, temp dirs) is torn down even when tests fail."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from banger.host.hostinfo import kvm_facts

BANGER = [sys.executable, "-m", "banger.cli"]
IMAGE_CACHE = Path(os.environ.get("BANGER_TEST_IMAGE_CACHE", "/var/tmp/banger-test-image"))
REQUIRED_TOOLS = ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "mkfs.ext4", "ip", "ssh")


def _missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "end-to-end tests need root (network namespaces, bridges, TAPs)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return f"end-to-end tests need {', '.join(missing)}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing_prerequisites()
    for item in items:
        if "e2e" not in item.nodeid:
            continue
        item.add_marker(pytest.mark.e2e)
        if reason:
            if os.environ.get("BANGER_REQUIRE_E2E"):
                raise pytest.UsageError(f"BANGER_REQUIRE_E2E is set but {reason}")
            item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Netns:
    name: str

    def exec_argv(self, argv: list[str]) -> list[str]:
        # Not `ip netns exec`: it mounts a sysfs of its own, which hides the host's cgroup
        # hierarchies the daemon confines its VMMs in.
        return ["nsenter", f"--net=/run/netns/{self.name}", *argv]

    def exec_argv_with_etc(self, argv: list[str]) -> list[str]:
        """For a program that must see the namespace's own /etc/netns/NAME files (its
        resolv.conf) over /etc, as `ip netns exec` bind-mounts them."""
        return ["ip", "netns", "exec", self.name, *argv]

    def pids(self) -> list[int]:
        out = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False
        ).stdout
        return [int(p) for p in out.split()]

    def links(self) -> list[str]:
        out = subprocess.run(
            self.exec_argv(["ip", "-json", "link", "show"]), capture_output=True, text=True,
            check=True,
        ).stdout
        return [link["ifname"] for link in json.loads(out)]


@dataclass
class BangerEnv:
    """One banger installation: its own HOME/XDG dirs and daemon, in the test namespace."""

    root: Path
    netns: Netns
    config: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        home = self.root / "home"
        self.env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_STATE_HOME": str(home / ".local/state"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_RUNTIME_DIR": str(self.root / "run"),
        }
        self.env.pop("SSH_AUTH_SOCK", None)
        (home / ".config/banger").mkdir(parents=True)
        (self.root / "run").mkdir(mode=0o700)
        self.write_config(self.config)

    def write_config(self, text: str) -> None:
        (self.root / "home/.config/banger/config.toml").write_text(text)

    @property
    def state_dir(self) -> Path:
        return self.root / "home/.local/state/banger"

    @property
    def socket(self) -> Path:
        return self.root / "run/banger/bangerd.sock"

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.netns.exec_argv([*BANGER, *args]), env=self.env, capture_output=True,
            text=True, timeout=timeout, input=input, stdin=None if input else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"banger {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}{self._console_of(proc.stderr)}"
            )
        return proc

    def _console_of(self, stderr: str) -> str:
        """The end of the guest console of a VM the error kept for inspection: the env (and
        the console with it) is gone by the time anyone reads the failure."""
        kept = re.search(r"banger vm logs (\S+?)[;,\s]", stderr)
        if kept is None:
            return ""
        logs = subprocess.run(
            self.netns.exec_argv([*BANGER, "vm", "logs", kept.group(1)]), env=self.env,
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        tail = "\n".join(logs.stdout.splitlines()[-80:])
        return f"\nconsole of {kept.group(1)} (last 80 lines):\n{tail}"

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    @contextlib.contextmanager
    def vm(self, name: str, *create_args: str) -> Iterator[str]:
        """A VM made with `vm create --name NAME ...`, deleted afterwards whatever happened."""
        self.run("vm", "create", "--name", name, *create_args)
        try:
            yield name
        finally:
            self.run("vm", "delete", "--force", name, check=False)

    def daemon_pid(self) -> int | None:
        lock = self.state_dir / "bangerd.lock"
        with contextlib.suppress(OSError, ValueError):
            pid = int(lock.read_text().strip())
            os.kill(pid, 0)
            return pid
        return None

    def shutdown(self) -> None:
        """Stop the daemon and every VM it started (by PID, from its own records)."""
        with contextlib.suppress(Exception):
            for vm in self.json("vm", "list"):
                self.run("vm", "delete", "--force", vm["name"], check=False, timeout=60)
        with contextlib.suppress(Exception):
            self.run("daemon", "stop", check=False, timeout=30)
        pid = self.daemon_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def temporary_netns() -> Iterator[Netns]:
    """A network namespace of our own; on exit, every process inside it (only ever the
    daemons and VMs we started there) is killed and the namespace deleted."""
    ns = Netns(f"bgt-{uuid.uuid4().hex[:8]}")
    subprocess.run(["ip", "netns", "add", ns.name], check=True)
    subprocess.run(ns.exec_argv(["ip", "link", "set", "lo", "up"]), check=True)
    try:
        yield ns
    finally:
        for _ in range(3):
            pids = ns.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        subprocess.run(["ip", "netns", "del", ns.name], check=False)


INTERNET_IP = "198.51.100.1"  # a documentation address: it exists only in internet_site
INTERNET_URL = f"http://{INTERNET_IP}:8080/"


@contextlib.contextmanager
def joined_namespace(netns: Netns, addresses: list[str], peer_address: str) -> Iterator[Netns]:
    """A namespace joined to `netns` by a veth pair: `addresses` (CIDRs) on its end,
    `peer_address` on ours, no route back to anything else. Both ends are created straight
    inside the two test namespaces; deleting the namespace takes the veth along."""
    ns = Netns(f"bgc-{uuid.uuid4().hex[:8]}")
    inner, outer = f"bgci{uuid.uuid4().hex[:6]}", f"bgco{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns.name], check=True)
    try:
        subprocess.run(["ip", "link", "add", outer, "netns", netns.name, "type", "veth",
                        "peer", "name", inner, "netns", ns.name], check=True)
        for argv in (
            ns.exec_argv(["ip", "link", "set", "lo", "up"]),
            *(ns.exec_argv(["ip", "addr", "add", a, "dev", inner]) for a in addresses),
            ns.exec_argv(["ip", "link", "set", inner, "up"]),
            netns.exec_argv(["ip", "addr", "add", peer_address, "dev", outer]),
            netns.exec_argv(["ip", "link", "set", outer, "up"]),
        ):
            subprocess.run(argv, check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], check=False)


@contextlib.contextmanager
def internet_site(netns: Netns, site: Path) -> Iterator[Netns]:
    """A second namespace plays "the internet": INTERNET_URL serves `site`, joined to `netns`
    by a veth pair (its uplink) and with no route back to the guest subnet, so guests reach
    it only through banger's NAT. Nothing leaves the two namespaces."""
    probe = f"import urllib.request; urllib.request.urlopen('{INTERNET_URL}', timeout=4)"
    with joined_namespace(netns, [f"{INTERNET_IP}/24"], "198.51.100.2/24") as ns:
        server = subprocess.Popen(ns.exec_argv([
            sys.executable, "-m", "http.server", "8080", "--bind", INTERNET_IP,
            "--directory", str(site),
        ]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                if subprocess.run(ns.exec_argv([sys.executable, "-c", probe]),
                                  capture_output=True, check=False).returncode == 0:
                    break
                time.sleep(0.2)
            yield ns
        finally:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def netns() -> Iterator[Netns]:
    with temporary_netns() as ns:
        yield ns


def _short_tmpdir(prefix: str) -> Path:
    # Unix socket paths are limited to 108 bytes: keep test roots short.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def test_image() -> dict[str, str]:
    return ensure_test_image()


def ensure_cached(entry: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """`entry` of the image cache, built unless `entry/marker` exists: `build(staging)` fills
    a staging directory that replaces the entry only once it is complete, so a build that
    fails halfway leaves nothing that looks built. Several test runs may start at once: one
    builds the entry, the others wait for it (and only for it: building one entry does not
    hold up runs that need another)."""
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(IMAGE_CACHE / f".{entry.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (entry / marker).exists():
            staging = entry.with_name(entry.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            try:
                build(staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            shutil.rmtree(entry, ignore_errors=True)
            staging.rename(entry)
    return entry


def ensure_test_image() -> dict[str, str]:
    """The Debian test image, built by `banger image pull` once per recipe version."""
    from banger.core.imagerecipe import RECIPE_VERSION

    return ensure_catalog_image("debian-bookworm", IMAGE_CACHE / RECIPE_VERSION)


def ensure_catalog_image(name: str, cache: Path | None = None) -> dict[str, str]:
    """A catalog image built by `banger image pull NAME` outside the namespace (the build
    needs the mirror), cached by recipe version: {"rootfs", "kernel", "initrd"}."""
    from banger.core.imagerecipe import RECIPE_VERSION

    entry = cache or IMAGE_CACHE / f"{name}-{RECIPE_VERSION}"

    def build(staging: Path) -> None:
        with _pulled_on_host("image", name, timeout=1800) as image:
            files = {}
            for key in ("rootfs", "kernel", "initrd"):
                source = Path(image[key])
                shutil.move(source, staging / source.name)
                files[key] = str(entry / source.name)
            (staging / "image.json").write_text(json.dumps(files))

    ensure_cached(entry, "image.json", build)
    files: dict[str, str] = json.loads((entry / "image.json").read_text())
    return files


def ensure_catalog_kernel(name: str) -> dict[str, str]:
    """A catalog kernel pulled by `banger kernel pull NAME` outside the namespace (which has
    no route to the mirror), cached like the test image: {"vmlinuz", "initrd", "version"}."""
    from banger.core.initrd import INITRD_VERSION

    # Keyed by the initrd's version too: the pull builds banger's initrd.
    entry = IMAGE_CACHE / f"kernel-{name}-initrd{INITRD_VERSION}"

    def build(staging: Path) -> None:
        with _pulled_on_host("kernel", name, timeout=900) as kernel:
            shutil.copytree(Path(kernel["vmlinuz"]).parent, staging, symlinks=True,
                            dirs_exist_ok=True)
            (staging / "kernel.json").write_text(json.dumps({
                "vmlinuz": str(entry / "vmlinuz"), "initrd": str(entry / "initrd.img"),
                "version": kernel["version"],
            }))

    ensure_cached(entry, "kernel.json", build)
    files: dict[str, str] = json.loads((entry / "kernel.json").read_text())
    return files


@contextlib.contextmanager
def _pulled_on_host(noun: str, name: str, *, timeout: float) -> Iterator[dict[str, Any]]:
    """`banger NOUN pull NAME` by a throwaway installation outside the namespace (the pull
    needs the mirror): yields `NOUN show NAME` once its daemon has stopped, so its files can
    be moved away, and removes the installation at the end."""
    root = _short_tmpdir("bgb-")
    try:
        env = BangerEnv(root, _HostNamespace())
        try:
            started = time.monotonic()
            env.run(noun, "pull", name, timeout=timeout)
            print(f"pulled {noun} {name} in {time.monotonic() - started:.0f}s",
                  file=sys.stderr)
            shown: dict[str, Any] = env.json(noun, "show", name)
        finally:
            env.run("daemon", "stop", check=False)
        yield shown
    finally:
        shutil.rmtree(root, ignore_errors=True)


class _HostNamespace(Netns):
    def __init__(self) -> None:
        super().__init__("host")

    def exec_argv(self, argv: list[str]) -> list[str]:
        return argv


def make_env(
    netns: Netns, test_image: dict[str, str], config: str = "", *, register: bool = True
) -> BangerEnv:
    if "warm_start" not in config:
        # Warm templates are tested on their own (test_warm.py); elsewhere a template made in
        # the background after the first boot would change what later tests exercise.
        config = "warm_start = false\n" + config
    env = BangerEnv(_short_tmpdir("bgt-"), netns, config)
    if register:
        env.run(
            "image", "register", "--name", "debian-bookworm", "--rootfs", test_image["rootfs"],
            "--kernel", test_image["kernel"], "--initrd", test_image["initrd"],
        )
    return env


@contextlib.contextmanager
def modified_test_image(
    env: BangerEnv, test_image: dict[str, str], workdir: Path, name: str, debugfs: str,
    then: Callable[[Path], None] | None = None,
) -> Iterator[None]:
    """The test image registered in `env` as `name`, its rootfs a copy changed by the
    `debugfs -w` commands in `debugfs` and then by `then(rootfs)`; deleted afterwards, copy
    and all (3 GiB that pytest would otherwise keep)."""
    rootfs = workdir / f"{name}.ext4"
    subprocess.run(["cp", "--sparse=always", test_image["rootfs"], str(rootfs)], check=True)
    subprocess.run(["debugfs", "-w", "-f", "-", str(rootfs)], input=debugfs, text=True,
                   check=True, capture_output=True)
    if then is not None:
        then(rootfs)
    env.run("image", "register", "--name", name, "--rootfs", str(rootfs),
            "--kernel", test_image["kernel"], "--initrd", test_image["initrd"])
    try:
        yield
    finally:
        env.run("image", "delete", name, check=False)
        rootfs.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def banger(netns: Netns, test_image: dict[str, str]) -> Iterator[BangerEnv]:
    """The session's main banger installation (default bridge banger0, 172.16.0.1/24)."""
    env = make_env(netns, test_image)
    try:
        yield env
    finally:
        env.shutdown()
        shutil.rmtree(env.root, ignore_errors=True)


@pytest.fixture
def second_banger(netns: Netns, test_image: dict[str, str]) -> Iterator[BangerEnv]:
    """A separate installation on its own bridge and subnet, for config-specific tests."""
    yield from _second_banger(netns, test_image)


@pytest.fixture(scope="module")
def second_banger_module(netns: Netns, test_image: dict[str, str]) -> Iterator[BangerEnv]:
    """`second_banger`, shared by the tests of one module."""
    yield from _second_banger(netns, test_image)


def _second_banger(netns: Netns, test_image: dict[str, str]) -> Iterator[BangerEnv]:
    envs: list[BangerEnv] = []

    def factory(config: str = "", register: bool = True) -> BangerEnv:
        network = (
            'bridge_name = "bgt1"\nbridge_ip = "172.16.1.1"\ncidr = "172.16.1.0/24"\n'
        )
        env = make_env(netns, test_image, network + config, register=register)
        envs.append(env)
        return env

    try:
        yield factory  # type: ignore[misc]
    finally:
        for env in envs:
            env.shutdown()
            shutil.rmtree(env.root, ignore_errors=True)


# Helpers the warm-template tests of both backends share.


def real_firecracker() -> tuple[str | None, str]:
    binary = shutil.which("firecracker")
    if binary is None:
        return None, "no firecracker binary on PATH"
    if not kvm_facts().real:
        return None, "firecracker is installed but /dev/kvm is not hardware KVM"
    return binary, ""


PROBE = (
    "hostname; cat /etc/machine-id; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; "
    "echo; date +%s.%N; cat /etc/ssh/ssh_host_ed25519_key.pub; findmnt -n -o SOURCE /root; "
    "cat /proc/cmdline; cat /sys/block/vdb/size; ip -o -6 addr show scope link | wc -l"
)


def probe_clone(env: BangerEnv, name: str) -> dict[str, Any]:
    before = time.time()
    out = env.run("vm", "ssh", name, "--", "sh", "-c", PROBE).stdout.splitlines()
    after = time.time()
    hostname, machine_id, random_hex, guest_now, host_key, root_source, cmdline = out[:7]
    work_sectors, link_local = out[7:9]
    # The guest read its clock at some point while the ssh command ran.
    guest = float(guest_now)
    skew = 0.0 if before <= guest <= after else min(abs(guest - before), abs(guest - after))
    return {
        "hostname": hostname, "machine_id": machine_id, "random": random_hex,
        "clock_skew": skew, "host_key": host_key.strip(),
        "root_source": root_source, "cmdline": cmdline,
        "work_bytes": int(work_sectors) * 512, "link_local": int(link_local),
    }


def create_restored_at_once(env: BangerEnv, names: tuple[str, ...]) -> None:
    """`vm create` of each name, all at once, each restored from the template (no warning)."""
    procs = [
        subprocess.Popen(
            env.netns.exec_argv([*BANGER, "vm", "create", "--name", name]),
            env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL,
        )
        for name in names
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        assert "warm template" in stderr, stderr  # the progress line says it restored
        assert "warning" not in stderr, stderr


def assert_isolated_then_cold_restart(env: BangerEnv, a: str, b: str) -> None:
    """Two clones of one template: what `a` writes, `b` does not see (root and work disk
    alike); and `a` is an ordinary VM afterwards: it stops, boots cold and keeps its data.
    Deletes both."""
    env.run("vm", "ssh", a, "--", "sh", "-c",
            "echo a > /root/only-a && echo a > /etc/only-a && sync")
    env.run("vm", "ssh", b, "--", "sh", "-c", "test ! -e /root/only-a && test ! -e /etc/only-a")
    env.run("vm", "stop", a, timeout=120)
    env.run("vm", "start", a, timeout=600)
    after = env.run("vm", "ssh", a, "--", "sh", "-c",
                    "cat /root/only-a /etc/only-a; hostname; cat /proc/cmdline").stdout
    assert after.splitlines()[:3] == ["a", "a", a]
    assert "banger.ip=" in after
    for name in (a, b):
        env.run("vm", "delete", "--force", name, timeout=120)
