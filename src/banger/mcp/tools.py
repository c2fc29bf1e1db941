"""The sandbox tools `banger mcp` offers, as plain methods over a `banger.client.Client`.

Each returns JSON-ready values (the model reads them) and raises banger's own errors; the
server (banger.mcp.server) turns those into MCP tool errors. Parameters carry their
descriptions (`Annotated`), which become the tools' input schemas."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from banger.core.errors import InvalidInput
from banger.core.models import VM
from banger.core.workspace import DEFAULT_GUEST_PATH

if TYPE_CHECKING:
    from banger.client import Client
    from banger.client.workspace import GuestCommand

# What a reply carries of one output stream or file: a model reads every byte of it, and an
# MCP client holds the whole reply in memory. The start and the end of an output say the
# most (what ran, how it failed), so a longer one loses its middle.
OUTPUT_HEAD = 48 * 1024
OUTPUT_TAIL = 16 * 1024
MAX_FILE_READ = 1024 * 1024
MAX_PATCH = 1024 * 1024
DEFAULT_EXEC_TIMEOUT = 600.0

Encoding = Literal["text", "base64"]
VMName = Annotated[str, Field(description="The sandbox's name (see sandbox_list).")]
GuestPath = Annotated[str, Field(description="An absolute path in the sandbox.")]
WorkspacePath = Annotated[str, Field(
    description=f"Where the copy is in the sandbox (default: {DEFAULT_GUEST_PATH})."
)]


class CappedOutput:
    """One output stream, kept to its first `head` and last `tail` bytes."""

    def __init__(self, head: int = OUTPUT_HEAD, tail: int = OUTPUT_TAIL) -> None:
        self._head_limit = head
        self._tail_limit = tail
        self.head = bytearray()
        self.tail = bytearray()
        self.omitted = 0

    def write(self, data: bytes) -> None:
        room = self._head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        excess = len(self.tail) - self._tail_limit
        if excess > 0:
            del self.tail[:excess]
            self.omitted += excess

    def text(self) -> str:
        if not self.omitted:
            return (self.head + self.tail).decode(errors="replace")
        return (
            self.head.decode(errors="replace")
            + f"\n[... {self.omitted} bytes omitted ...]\n"
            + self.tail.decode(errors="replace")
        )


def sandbox_summary(vm: VM) -> dict[str, Any]:
    return {
        "name": vm.name, "state": str(vm.state), "image": vm.image, "ip": vm.ip,
        "vcpu": vm.spec.vcpu, "memory_mib": vm.spec.memory_mib, "nat": vm.nat,
        "workspaces": [w.guest_path for w in vm.workspaces],
    }


class SandboxTools:
    """`guest(name)` runs a shell script in VM `name` with the caller's stdin (the
    workspace copy streams a tar through it): the CLI passes its ssh."""

    def __init__(self, client: Client, guest: Callable[[str], GuestCommand]) -> None:
        self.client = client
        self.guest = guest

    def sandbox_create(
        self,
        image: Annotated[str | None, Field(
            description="Image to boot (default: the configured default image).")] = None,
        name: Annotated[str | None, Field(
            description="A DNS label; generated when omitted.")] = None,
        vcpu: Annotated[int | None, Field(description="Number of vCPUs.", ge=1)] = None,
        memory_mib: Annotated[int | None, Field(description="RAM in MiB.", ge=1)] = None,
        disk_size: Annotated[str | None, Field(
            description="Work disk size (/root), e.g. 8G.")] = None,
        nat: Annotated[bool, Field(
            description="Give the sandbox outbound network access through the host "
                        "(otherwise it reaches the host's DNS only).")] = False,
    ) -> dict[str, Any]:
        """Create and boot a sandbox (a microVM); returns once it is up. Restores the
        image's warm template when it has one (about a second), else boots it."""
        created = self.client.create_vm(
            name=name, image=image, vcpu=vcpu, memory_mib=memory_mib, disk_size=disk_size,
            nat=nat,
        )
        return sandbox_summary(created)

    def sandbox_list(self) -> dict[str, Any]:
        """List the sandboxes (every banger VM) with their state, image, size and IP."""
        return {"sandboxes": [sandbox_summary(vm) for vm in self.client.list_vms()]}

    def sandbox_exec(
        self,
        name: VMName,
        command: Annotated[str | None, Field(
            description="A shell command line (run by /bin/sh -c).")] = None,
        argv: Annotated[list[str] | None, Field(
            description="Or the program and its arguments, run without a shell.")] = None,
        cwd: Annotated[str | None, Field(description="Working directory.")] = None,
        env: Annotated[dict[str, str] | None, Field(
            description="Extra environment variables.")] = None,
        stdin: Annotated[str, Field(description="Text fed to the command's stdin.")] = "",
        timeout: Annotated[float, Field(
            description="Seconds before the command is killed (0: never).", ge=0,
        )] = DEFAULT_EXEC_TIMEOUT,
    ) -> dict[str, Any]:
        """Run a command in a running sandbox as root; returns its exit code, stdout and
        stderr (a long output keeps its start and end, with a note of what was left out)."""
        if (command is None) == (argv is None):
            raise InvalidInput(
                "give exactly one of command and argv",
                hint='command: "make test" (a shell line); argv: ["make", "test"]',
            )
        stdout, stderr = CappedOutput(), CappedOutput()
        result = self.client.exec_vm(
            name, argv, command=command, env=env, cwd=cwd, stdin=stdin.encode(),
            timeout=timeout, on_stdout=stdout.write, on_stderr=stderr.write,
        )
        reply: dict[str, Any] = {
            "exit_code": result.get("exit_code"), "signal": result.get("signal"),
            "timed_out": bool(result.get("timed_out")),
            "stdout": stdout.text(), "stderr": stderr.text(),
        }
        omitted = {label: out.omitted for label, out in (("stdout", stdout), ("stderr", stderr))
                   if out.omitted}
        if omitted:
            reply["truncated"] = " and ".join(
                f"{label} lost {count} bytes from its middle" for label, count in omitted.items()
            ) + "; redirect to a file and read parts of it to see everything"
        return reply

    def sandbox_read_file(
        self,
        name: VMName,
        path: GuestPath,
        encoding: Annotated[Encoding, Field(
            description="text (UTF-8) or base64 (for binary files).")] = "text",
    ) -> dict[str, Any]:
        """Read a file in a running sandbox (up to 1 MiB of it)."""
        data = self.client.read_file(name, path)
        reply: dict[str, Any] = {"path": path, "size": len(data)}
        if len(data) > MAX_FILE_READ:
            data = data[:MAX_FILE_READ]
            reply["truncated"] = (
                f"only the first {MAX_FILE_READ} bytes; use sandbox_exec (head, tail, "
                "sed -n) for the rest"
            )
        if encoding == "base64":
            reply["content_base64"] = base64.b64encode(data).decode()
        else:
            reply["content"] = data.decode(errors="replace")
        return reply

    def sandbox_write_file(
        self,
        name: VMName,
        path: GuestPath,
        content: Annotated[str, Field(description="The file's new content.")],
        encoding: Annotated[Encoding, Field(
            description="How content is given: text (written as UTF-8) or base64.")] = "text",
        mode: Annotated[str, Field(
            description="Permission bits in octal, e.g. 644 or 755.",
            pattern="^[0-7]{3,4}$")] = "644",
    ) -> dict[str, Any]:
        """Create or replace a file in a running sandbox (atomically; owned by root)."""
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=True)
            except binascii.Error:
                raise InvalidInput(
                    "content is not valid base64", hint='give encoding "text" for plain text'
                ) from None
        else:
            data = content.encode()
        self.client.write_file(name, path, data, mode=int(mode, 8))
        return {"path": path, "size": len(data), "mode": mode}

    def sandbox_delete(
        self,
        name: VMName,
    ) -> dict[str, Any]:
        """Delete a sandbox, running or not, with its disks (everything in it is lost)."""
        deleted = self.client.delete_vm(name, force=True)
        return {"deleted": deleted.name}

    def sandbox_copy_workspace(
        self,
        name: VMName,
        path: Annotated[str, Field(
            description="A git checkout on this machine (absolute, or relative to the "
                        "server's working directory).")],
        guest_path: WorkspacePath = DEFAULT_GUEST_PATH,
        branch: Annotated[str | None, Field(
            description="Check out this branch in the copy (made if new).")] = None,
        readonly: Annotated[bool, Field(
            description="Make the copy read-only (immutable, even for root).")] = False,
    ) -> dict[str, Any]:
        """Copy a local git checkout into a running sandbox, as `banger vm run ./repo` does:
        .git and every tracked and untracked, not-ignored file as it is now (uncommitted
        edits included). Records HEAD as the base for sandbox_export_workspace."""
        from banger.client.workspace import prepare_workspace

        result = prepare_workspace(
            self.client, name, path, self.guest(name), guest_path=guest_path,
            branch=branch, readonly=readonly,
        )
        return {
            "guest_path": result.workspace.guest_path,
            "base_commit": result.workspace.base_commit, "branch": result.workspace.branch,
            "files": result.files, "bytes": result.bytes, "readonly": result.readonly,
            "seconds": round(result.seconds, 2),
        }

    def sandbox_export_workspace(
        self,
        name: VMName,
        guest_path: WorkspacePath = DEFAULT_GUEST_PATH,
        base: Annotated[str | None, Field(
            description="Diff against this commit instead of the recorded base.")] = None,
        output: Annotated[str | None, Field(
            description="Write the patch to this file on this machine instead of returning "
                        "it (for patches over 1 MiB).")] = None,
    ) -> dict[str, Any]:
        """The changes made in a sandbox's workspace copy since its base commit, as a
        patch, like `banger vm workspace export`: a `git diff` (apply with git apply), or
        with guest commits a `git format-patch` series (apply with git am)."""
        from banger.client.workspace import export_workspace

        result = export_workspace(
            self.client, name, self.guest(name), guest_path=guest_path, base=base
        )
        reply: dict[str, Any] = {
            "guest_path": result.guest_path, "description": result.description,
            "apply_with": "git am" if result.header.format == "mbox" else "git apply",
            "bytes": len(result.patch),
        }
        if output is not None:
            Path(output).expanduser().write_bytes(result.patch)
            reply["output"] = output
        elif len(result.patch) > MAX_PATCH:
            raise InvalidInput(
                f"the patch is {len(result.patch)} bytes, over the {MAX_PATCH} a reply carries",
                hint="give output: a file path on this machine to write it to",
            )
        else:
            reply["patch"] = result.patch.decode(errors="replace")
        return reply


TOOL_NAMES = (
    "sandbox_create", "sandbox_list", "sandbox_exec", "sandbox_read_file",
    "sandbox_write_file", "sandbox_delete", "sandbox_copy_workspace",
    "sandbox_export_workspace",
)
