"""`banger ssh-config [--install|--uninstall]`: opt in to plain `ssh <name>.vm`."""

from __future__ import annotations

import os
import pwd
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from banger.cli.context import Context
from banger.cli.spec import Command, Opt, echo
from banger.core import sshconfig
from banger.core.errors import HostError
from banger.core.paths import paths_from_env


def _ssh_config(ctx: Context, action: str | None) -> None:
    """Make plain `ssh NAME.vm` work: print or install an Include for ~/.ssh/config.

    With a remote daemon (--host, a context), the file is this machine's for that host:
    its running VMs, reached through the host (ProxyJump) with this machine's own key;
    run the command again to add VMs made since.

    bangerd keeps ~/.config/banger/ssh_config current: a `Host NAME.vm` entry per VM with
    its address, banger's key and banger's known_hosts (the VM's pinned host key). banger
    never edits ~/.ssh/config on its own; --install adds the Include in a marked block at
    the top of the file (an Include further down would sit inside your last Host section
    and apply only to that host), --uninstall removes just that block.
    """
    passwd_home = _passwd_home()
    home = Path(os.environ.get("HOME") or passwd_home or "/")
    included = paths_from_env(os.environ).ssh_config
    if ctx.client.remote is not None:
        included = _remote_ssh_config(ctx)
    # ssh expands `~` in Include to the passwd entry's home, which may differ from $HOME.
    target = sshconfig.include_path(
        PurePosixPath(included), PurePosixPath(passwd_home or home),
    )
    config = home / ".ssh" / "config"
    if action is None:
        echo(f"Include {target}")
        echo(f"(put it at the top of {config}, or run `banger ssh-config --install`)",
             err=True)
    elif action == "install":
        if _edit(config, lambda text: sshconfig.install(text, target)):
            echo(f"added `Include {target}` at the top of {config}")
        else:
            echo(f"already set up in {config}")
    elif not config.exists() or not _edit(config, sshconfig.uninstall):
        echo(f"no banger block in {config}")
    else:
        echo(f"removed banger's block from {config}")


def _remote_ssh_config(ctx: Context) -> Path:
    """With a remote daemon: this machine's file for that host, brought up to date with
    every running VM there (each gets this machine's key; ssh goes through ProxyJump)."""
    from banger.client.guestreach import RemoteFiles, client_key, guest_access

    assert ctx.client.remote is not None
    for vm in ctx.client.list_vms():
        if vm.state == "running":
            guest_access(ctx.client, vm.name)
    key = client_key(ctx.client.paths.default_ssh_key)
    return RemoteFiles(ctx.client.paths.config_dir, ctx.client.remote, key).ssh_config


def _passwd_home() -> str | None:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return None


def _edit(path: Path, change: Callable[[str], str]) -> bool:
    """Apply `change` to the file's text; write only if it changed, atomically, keeping the
    file's mode and owner (a symlinked config, say from a dotfiles repo, is edited where it
    points). A missing file is created 0600 and a missing ~/.ssh 0700."""
    target = Path(os.path.realpath(path))
    try:
        data = target.read_bytes()
        info = target.stat()
    except FileNotFoundError:
        data, info = None, None
    except OSError as exc:
        raise HostError(f"cannot read {path}: {exc.strerror}") from None
    # surrogateescape: bytes that are not UTF-8 come back out unchanged.
    old = "" if data is None else data.decode("utf-8", "surrogateescape")
    new = change(old)
    if new == old and data is not None:
        return False
    if not target.parent.exists():
        target.parent.mkdir(parents=True)
        target.parent.chmod(0o700)
    mode = 0o600 if info is None else info.st_mode & 0o7777
    try:
        fd, tmp = tempfile.mkstemp(prefix=".config.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)
                if info is not None and os.geteuid() == 0:
                    os.fchown(f.fileno(), info.st_uid, info.st_gid)
                f.write(new.encode("utf-8", "surrogateescape"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise HostError(f"cannot write {path}: {exc.strerror}") from None
    return True


ssh_config = Command("ssh-config", _ssh_config, [
    Opt("--install", dest="action", const="install",
        help="Add the Include line to ~/.ssh/config (in a marked block at the top)."),
    Opt("--uninstall", dest="action", const="uninstall", help="Remove exactly that block again."),
])

