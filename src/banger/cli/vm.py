"""`banger vm ...`."""

from __future__ import annotations

import sys
import time

from banger.cli.context import Context
from banger.cli.render import ProgressPrinter, iso_time, print_fields, print_json, print_table
from banger.cli.spec import DIR, IMAGES, KERNELS, VMS, Arg, Group, Lazy, Opt, echo, path
from banger.core.errors import BangerError, InvalidInput
from banger.core.units import format_size

TYPE_CHECKING = False  # not typing's: see banger.core.xdg

if TYPE_CHECKING:
    from typing import Any

    from banger.client.workspace import Repo
    from banger.core.api import Readiness
    from banger.core.models import VM

vm = Group("vm", "Create, run and manage VMs.")
vm.add(Lazy("workspace", "banger.cli.workspace:workspace",
            "Copy a git checkout into a VM; get the guest's changes back as a patch."))
vm.add(Lazy("exec", "banger.cli.guestio:exec_command",
            "Run a command in a running VM through banger's guest agent, without ssh."))
vm.add(Lazy("cp", "banger.cli.guestcp:cp_command",
            "Copy a file into or out of a running VM through banger's guest agent."))

SIZE_OPTIONS = (
    Opt("--vcpu", type=int, metavar="N", help="Number of vCPUs."),
    Opt("--memory", type=int, metavar="MIB", help="RAM in MiB."),
    Opt("--disk-size", metavar="SIZE", help="Work disk size (/root), e.g. 8G."),
)
JSON = Opt("--json", dest="as_json", flag=True, help="Machine-readable output.")
NAME = Arg("name", complete=VMS)
IMAGE = Opt("--image", complete=IMAGES, help="Image to boot (default: default_image_name).")
COLD = Opt("--cold", flag=True, help="Boot even if the image has a warm template.")
# A new VM's network reach (it reaches the host's DNS and nothing else without them).
NETWORK_OPTIONS = (
    Opt("--nat", flag=True, help="Give the guest outbound access through the host."),
    Opt("--egress-allow", metavar="LIST", help="Without --nat, let the guest reach only "
        "these CIDRs and DNS names, comma-separated (e.g. example.org,10.1.0.0/16; "
        "default: [vm_defaults] egress_allow; none)."),
    Opt("--network-group", metavar="NAME", help="Let the guest reach the other VMs of this "
        "group (default: it reaches no other VM)."),
)


def _create(
    ctx: Context, *, name: str | None, image: str | None, vcpu: int | None,
    memory: int | None, disk_size: str | None, start: bool, ready: Readiness = "login",
    nat: bool = False, backend: str | None = None, kernel: str | None = None,
    cold: bool = False, egress_allow: str | None = None, network_group: str | None = None,
) -> VM:
    printer = ProgressPrinter()
    try:
        return ctx.client.create_vm(
            name=name, image=image, vcpu=vcpu, memory_mib=memory, disk_size=disk_size,
            start=start, on_progress=printer, ready=ready, nat=nat, backend=backend,
            kernel=kernel, cold=cold,
            egress_allow=None if egress_allow is None else [egress_allow],
            network_group=network_group,
        )
    finally:
        printer.done()


@vm.command(
    Arg("path", nargs="?", type=path(file_okay=False), complete=DIR),
    Opt("--name", help="VM name (a DNS label); generated when omitted."),
    IMAGE,
    *SIZE_OPTIONS,
    Opt("--rm", dest="remove", flag=True, help="Delete the VM when the session ends."),
    Opt("--branch",
        help="Workspace mode: check out this branch in the guest copy (made if new)."),
    Opt("--from", dest="from_ref", metavar="REF",
        help="Workspace mode: start --branch from this ref."),
    *NETWORK_OPTIONS,
    COLD,
    Opt("--tty", "-t", flag=True,
        help="Run COMMAND over ssh with a terminal (for interactive programs)."),
    trailing=True,
)
def run(
    ctx: Context, path: str | None, name: str | None,
    image: str | None, vcpu: int | None, memory: int | None, disk_size: str | None,
    remove: bool, branch: str | None, from_ref: str | None, nat: bool,
    egress_allow: str | None, network_group: str | None, cold: bool, tty: bool,
    command: tuple[str, ...],
) -> None:
    """Create and start a VM, then open a shell in it or run COMMAND (after `--`).

    COMMAND runs through banger's guest agent (no ssh login, no terminal: its stdin is
    this command's when that is not a terminal), unless --tty; the shell over ssh.
    With PATH (a git checkout), the VM gets a copy of it at /root/repo first (tracked and
    untracked, not-ignored files as they are now, plus .git) and the shell or COMMAND
    starts there.

      banger vm run                      # shell in a fresh sandbox
      banger vm run --rm -- make test    # run a command, exit with its status
      banger vm run ./repo -- make test  # the same, in a copy of ./repo
    """
    if path is None and (branch or from_ref):
        raise InvalidInput(
            "--branch/--from need a workspace PATH",
            hint="banger vm run ./repo --branch NAME [--from REF]",
        )
    if from_ref and not branch:
        raise InvalidInput("--from needs --branch", hint="--branch NAME --from REF")
    repo = None
    if path is not None:
        from banger.client.workspace import find_repo

        repo = find_repo(path)  # before a VM exists: a bad PATH costs nothing
    via_agent = bool(command) and not tty
    # A shell logs in right away itself (with the pinned host key), so the daemon need not;
    # a COMMAND needs only the agent, which a cold boot may have up before sshd.
    created = _create_for_run(ctx, create_body(
        name=name, image=image, vcpu=vcpu, memory=memory, disk_size=disk_size,
        ready="agent" if via_agent else "sshd", cold=cold, nat=nat, egress_allow=egress_allow,
        network_group=network_group,
    ))
    cwd = None
    if repo is not None:
        try:
            cwd = _copy_workspace(ctx, created, repo, branch, from_ref, command, via_agent)
        except BangerError:
            if remove:
                _delete_quietly(ctx, created)
            raise
    if via_agent:
        try:
            from banger.cli.guestrun import run_command

            code = run_command(ctx, created, command, cwd)
        finally:
            if remove:
                _delete_quietly(ctx, created)
        sys.exit(code)
    from banger.cli.sshexec import exec_ssh, run_ssh, ssh_argv
    from banger.client.guestreach import guest_access

    argv = ssh_argv(guest_access(ctx.client, created), command, cwd=cwd,
                    interactive=sys.stdin.isatty())
    if not remove:
        if not command:
            echo(f"connecting to {created} (leave with `exit`; the VM keeps running)",
                 err=True)
        exec_ssh(argv)
    code = run_ssh(argv)
    _delete_quietly(ctx, created)
    sys.exit(code)


def create_body(
    *, name: str | None, image: str | None, vcpu: int | None, memory: int | None,
    disk_size: str | None, ready: str, cold: bool, nat: bool, egress_allow: str | None,
    network_group: str | None,
) -> dict[str, Any]:
    """`vm run`'s CreateVM body, built by hand: the model classes (dataclasses, inspect)
    would cost `vm run -- CMD` more start-up than its whole exec (see cli/guestproc.py).
    tests/cli check it against CreateVM's."""
    return {
        "name": name, "image": image, "vcpu": vcpu, "memory_mib": memory,
        "disk_size": disk_size, "start": True, "ready": ready, "nat": nat, "backend": None,
        "kernel": None, "cold": cold,
        "egress_allow": None if egress_allow is None else [egress_allow],
        "network_group": network_group or "",
    }


def _create_for_run(ctx: Context, body: dict[str, Any]) -> str:
    """Create and start the VM `body` describes, its progress on stderr: its name."""
    printer = ProgressPrinter()
    try:
        return str(ctx.client._create_vm_wire(body, printer.wire)["name"])
    finally:
        printer.done()


def _copy_workspace(
    ctx: Context, name: str, repo: Repo, branch: str | None, from_ref: str | None,
    command: tuple[str, ...], via_agent: bool,
) -> str:
    """The guest path of `repo`'s copy: through the agent with a COMMAND (over ssh in a VM
    without one), else over ssh."""
    from functools import partial

    from banger.cli.workspace import prepare
    from banger.core.errors import GuestAgentUnavailable

    # The mise bootstrap is for interactive sessions; a COMMAND must not race it.
    copy = partial(prepare, ctx, name, str(repo.root), branch=branch, from_ref=from_ref,
                   bootstrap_tooling=not command, repo=repo)
    try:
        return copy(through_agent=via_agent).workspace.guest_path
    except GuestAgentUnavailable as exc:  # nothing was copied
        echo(f"warning: {exc.message}: copying the workspace over ssh", err=True)
    return copy().workspace.guest_path


def _delete_quietly(ctx: Context, name: str) -> None:
    try:
        ctx.client._delete_vm_wire(name, force=True)
    except BangerError as exc:
        echo(f"warning: could not delete {name}: {exc.message}", err=True)


@vm.command(
    Opt("--name", help="VM name (a DNS label); generated when omitted."),
    IMAGE,
    *SIZE_OPTIONS,
    Opt("--no-start", flag=True, help="Provision only; do not boot."),
    *NETWORK_OPTIONS,
    Opt("--backend", choices=["qemu", "firecracker"],
        help="VMM for this VM (default: the daemon's backend, see `banger doctor`)."),
    Opt("--kernel", complete=KERNELS, help="Kernel to boot (see `banger kernel list`; "
        "default: the image's own or default kernel)."),
    COLD,
    JSON,
)
def create(
    ctx: Context, name: str | None, image: str | None, vcpu: int | None,
    memory: int | None, disk_size: str | None, no_start: bool, nat: bool,
    egress_allow: str | None, network_group: str | None,
    backend: str | None, kernel: str | None, cold: bool, as_json: bool,
) -> None:
    """Create a VM (and boot it, unless --no-start). Its network is contained: it reaches
    the host's DNS and nothing else, unless --nat, --egress-allow or --network-group."""
    created = _create(
        ctx, name=name, image=image, vcpu=vcpu, memory=memory, disk_size=disk_size,
        start=not no_start, nat=nat, backend=backend, kernel=kernel, cold=cold,
        egress_allow=egress_allow, network_group=network_group,
    )
    if as_json:
        print_json(created)
    else:
        echo(f"{created.name} {created.state} {created.ip}")


@vm.command(
    NAME,
    Opt("--from-snapshot", flag=True,
        help="Restore the last `vm snapshot` instead of booting (Firecracker VMs)."),
)
def start(ctx: Context, name: str, from_snapshot: bool) -> None:
    """Boot a stopped VM and wait until ssh answers."""
    printer = ProgressPrinter()
    try:
        started = ctx.client.start_vm(name, printer, from_snapshot=from_snapshot)
    finally:
        printer.done()
    echo(f"{started.name} {started.state} {started.ip}")


@vm.command(NAME)
def pause(ctx: Context, name: str) -> None:
    """Stop a running VM's vCPUs; it keeps its memory and host resources."""
    paused = ctx.client.pause_vm(name)
    echo(f"{paused.name} {paused.state}")


@vm.command(NAME)
def resume(ctx: Context, name: str) -> None:
    """Let a paused VM run again."""
    resumed = ctx.client.resume_vm(name)
    echo(f"{resumed.name} {resumed.state}")


@vm.command(NAME)
def snapshot(ctx: Context, name: str) -> None:
    """Save a running VM's full state (memory, vCPUs, devices) into its VM dir; it keeps
    running. `banger vm start --from-snapshot NAME` restores it later (Firecracker VMs).

    Disks are not part of the snapshot: restore only over the disks as they were then,
    e.g. after `banger vm kill NAME` right after the snapshot.
    """
    snapped = ctx.client.snapshot_vm(name)
    echo(f"{snapped.name}: snapshot saved in {snapped.dir}/snapshot")


@vm.command(NAME)
def stop(ctx: Context, name: str) -> None:
    """Shut a VM down gracefully (killed after stop_timeout)."""
    stopped = ctx.client.stop_vm(name)
    echo(f"{stopped.name} {stopped.state}")


@vm.command(NAME)
def restart(ctx: Context, name: str) -> None:
    """Stop and start a VM."""
    printer = ProgressPrinter()
    try:
        restarted = ctx.client.restart_vm(name, printer)
    finally:
        printer.done()
    echo(f"{restarted.name} {restarted.state} {restarted.ip}")


@vm.command(
    NAME,
    Opt("--signal", dest="signal_name", default="KILL",
        help="Signal for the VMM process (TERM, KILL, INT, ...; default: KILL)."),
)
def kill(ctx: Context, name: str, signal_name: str) -> None:
    """Send a signal to a VM's VMM process."""
    killed = ctx.client.kill_vm(name, signal_name)
    echo(f"{killed.name} {killed.state}")


@vm.command(
    Arg("names", nargs="+", complete=VMS),
    Opt("--force", "-f", flag=True, help="Kill and delete running VMs too."),
)
def delete(ctx: Context, names: tuple[str, ...], force: bool) -> None:
    """Delete VMs and all their host artifacts."""
    for name in names:
        deleted = ctx.client.delete_vm(name, force=force)
        echo(f"deleted {deleted.name}")


@vm.command(
    NAME,
    *SIZE_OPTIONS,
    Opt("--nat", negatable=True,
        help="Turn outbound access through the host on or off (also while running)."),
    Opt("--egress-allow", metavar="LIST", help="CIDRs and DNS names the guest may reach "
        "without NAT, comma-separated; \"\" for none (also while running)."),
    Opt("--network-group", metavar="NAME",
        help="Put the VM in this group; \"\" to leave it (also while running)."),
    name="set",
)
def set_(
    ctx: Context, name: str, vcpu: int | None, memory: int | None, disk_size: str | None,
    nat: bool | None, egress_allow: str | None, network_group: str | None,
) -> None:
    """Change a stopped VM's size (the work disk can only grow), or its network policy."""
    from banger.core.egress import describe

    updated = ctx.client.set_vm(
        name, vcpu=vcpu, memory_mib=memory, disk_size=disk_size, nat=nat,
        egress_allow=None if egress_allow is None else [egress_allow],
        network_group=network_group,
    )
    nat_part = "" if nat is None else f", nat {'on' if updated.nat else 'off'}"
    if egress_allow is not None:
        nat_part += f", egress {describe(updated.nat, updated.egress_allow)}"
    if network_group is not None:
        nat_part += f", group {updated.network_group or '-'}"
    echo(
        f"{updated.name}: {updated.spec.vcpu} vCPU, {updated.spec.memory_mib} MiB, "
        f"{format_size(updated.spec.disk_size_bytes)} disk{nat_part}"
    )


@vm.command(NAME, JSON)
def stats(ctx: Context, name: str, as_json: bool) -> None:
    """Show a VM's CPU, memory, disk and network usage, now and recently."""
    from banger.cli.stats import HISTORY_HEADERS, history_rows, summary_fields

    report = ctx.client.vm_stats(name)
    if as_json:
        print_json(report)
        return
    print_fields(summary_fields(report, time.time()))
    rows = history_rows(report)
    if len(rows) > 1:
        echo()
        print_table(HISTORY_HEADERS, rows)


@vm.command(NAME, JSON)
def ports(ctx: Context, name: str, as_json: bool) -> None:
    """List the TCP and UDP sockets listening in a running VM, with their process and the
    NAME.vm:PORT address the host reaches them at ("-": not from the host, e.g. loopback)."""
    from banger.cli.sshexec import loopback_forwarded
    from banger.cli.workspace import guest_command
    from banger.client.guestreach import guest_access
    from banger.client.ports import list_ports
    from banger.core.ports import PORT_HEADERS, port_rows

    access = guest_access(ctx.client, name)
    found = list_ports(guest_command(ctx, name, access), vm=access["name"], ip=access["ip"],
                       forwarded=loopback_forwarded(access))
    if as_json:
        print_json(found)
    else:
        print_table(PORT_HEADERS, port_rows(found))


@vm.command(
    NAME,
    Arg("port", help="[LOCAL:]PORT: the guest's TCP port, and optionally the "
        "local one (default: the same number; 0, locally: any free one)."),
)
def forward(ctx: Context, name: str, port: str) -> None:
    """Make a guest's TCP port reachable on this machine's 127.0.0.1 until Ctrl-C, also
    when bangerd runs on a remote host (through its sshd), or without root (through the
    guest's sshd).

      banger vm forward web 8000         # http://127.0.0.1:8000 reaches web's :8000
      banger vm forward web 9000:8000
    """
    from banger.cli.sshexec import forward_argv, loopback_forwarded, run_ssh
    from banger.client.forward import forward_through_host, free_local_port, relay_forever
    from banger.client.guestreach import guest_access

    local_text, _, guest_text = port.rpartition(":")
    if not guest_text.isdigit() or not (local_text or "0").isdigit():
        raise InvalidInput(f"invalid port {port!r}", hint="PORT or LOCAL:PORT, e.g. 9000:8000")
    guest_port = int(guest_text)
    local_port = int(local_text) if local_text else guest_port
    access = ctx.client.vm_access(name)
    if loopback_forwarded(access):  # user-mode networking: only the guest's sshd is reachable
        local_port = local_port or free_local_port()
        echo(f"127.0.0.1:{local_port} -> {name}:{guest_port} through its sshd "
             "(Ctrl-C ends it)", err=True)
        sys.exit(run_ssh(forward_argv(guest_access(ctx.client, name), local_port, guest_port)))
    ip = access["ip"]
    remote = ctx.client.remote
    if remote is not None:
        echo(f"127.0.0.1:{local_port} -> {name}:{guest_port} through {remote.url} "
             "(Ctrl-C ends it)", err=True)
        sys.exit(forward_through_host(ctx.client, local_port, ip, guest_port))
    relay_forever(local_port, ip, guest_port, lambda bound: echo(
        f"127.0.0.1:{bound} -> {name}:{guest_port} (Ctrl-C ends it)", err=True))


@vm.command(JSON, name="list")
def list_(ctx: Context, as_json: bool) -> None:
    """List VMs."""
    # The wire form, not VM objects: the model classes cost this, the most frequent
    # command, a third of its run time (see docs/architecture.md).
    vms = ctx.client._list_vms_wire()
    if as_json:
        print_json(vms)
        return
    print_table(
        ["NAME", "STATE", "IP", "IMAGE", "VCPU", "MEMORY", "DISK", "CREATED"],
        [
            [v["name"], v["state"], v["ip"], v["image"], str(v["spec"]["vcpu"]),
             f"{v['spec']['memory_mib']}M", format_size(v["spec"]["disk_size_bytes"]),
             _ago(v["created_at"])]
            for v in vms
        ],
    )


@vm.command(NAME, JSON)
def show(ctx: Context, name: str, as_json: bool) -> None:
    """Show one VM."""
    from banger.core.egress import describe

    v = ctx.client.get_vm(name)
    if as_json:
        print_json(v)
        return
    network = [("ip", v.ip), ("dns", f"{v.name}.vm"), ("mac", v.mac), ("tap", v.tap)]
    if v.ssh_port:
        network = [
            ("ip", f"{v.ip} (user-mode networking: inside the VM only)"),
            ("ssh", f"127.0.0.1:{v.ssh_port}"),
            ("dns", "- (user-mode networking has no .vm names; `banger doctor` says more)"),
            ("mac", v.mac),
        ]
    pairs = [
        ("name", v.name), ("id", v.id), ("state", str(v.state)), ("image", v.image),
        *network,
        ("vcpu", str(v.spec.vcpu)), ("memory", f"{v.spec.memory_mib} MiB"),
        ("disk", format_size(v.spec.disk_size_bytes)),
        ("backend", f"{v.backend} ({v.accel})"), ("pid", str(v.pid or "-")),
        ("nat", "on" if v.nat else "off"),
        ("egress", describe(v.nat, v.egress_allow)),
        ("network group", v.network_group or "- (reaches no other VM)"),
        ("created", iso_time(v.created_at)),
        ("dir", v.dir),
    ]
    if v.last_error:
        pairs.append(("last error", v.last_error))
    print_fields(pairs)


@vm.command(NAME, Opt("--follow", "-f", flag=True, help="Keep printing new output."))
def logs(ctx: Context, name: str, follow: bool) -> None:
    """Print a VM's serial console."""
    import codecs

    from banger.core.terminal import neutralize

    offset = 0
    out = sys.stdout.buffer
    # On a terminal the guest's escape sequences are shown, not obeyed; a pipe or file gets
    # the console byte for byte.
    decoder = codecs.getincrementaldecoder("utf-8")("replace") if sys.stdout.isatty() else None
    while True:
        data, offset = ctx.client.vm_logs(name, offset)
        if data and decoder is not None:
            data = neutralize(decoder.decode(data)).encode()
        if data:
            out.write(data)
            out.flush()
        if not follow:
            return
        if not data:
            time.sleep(0.5)


@vm.command(NAME, trailing=True)
def ssh(ctx: Context, name: str, command: tuple[str, ...]) -> None:
    """Open a shell in a running VM, or run COMMAND (after `--`)."""
    from banger.cli.sshexec import exec_ssh, ssh_argv
    from banger.client.guestreach import guest_access

    access = guest_access(ctx.client, name)
    exec_ssh(ssh_argv(access, command, interactive=sys.stdin.isatty()))


def _ago(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
