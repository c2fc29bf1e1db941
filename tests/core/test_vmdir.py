from __future__ import annotations

from pathlib import Path

from banger.core.vmdir import VMDir


def test_the_files_of_a_vm_dir_keep_their_names() -> None:
    # Firecracker snapshots record drives by path and restored VMs open theirs by the same
    # names; a VM dir made by an older daemon must still be found.
    files = VMDir(Path("/vms/0123456789ab"))
    assert files.root_disk == Path("/vms/0123456789ab/root.qcow2")
    assert files.work_disk == Path("/vms/0123456789ab/work.ext4")
    assert files.console_log.name == "console.log"
    assert files.host_key_pub.name == "ssh_host_ed25519_key.pub"
    assert files.control_socket.name == "control.sock"
    assert files.agent_socket.name == "agent.sock"
