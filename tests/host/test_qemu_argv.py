from __future__ import annotations

from pathlib import Path

from banger.core.confine import RunAs
from banger.core.guest import BootIdentity, kernel_cmdline
from banger.core.slirp import UserNet
from banger.host.vmm.base import LaunchSpec
from banger.host.vmm.launch import Confinement
from banger.host.vmm.qemu import QemuHypervisor, qemu_argv
from banger.host.vmmuser import FixedVMMUids

VM_DIR = Path("/state/banger/vms/0123456789ab")
CMDLINE = kernel_cmdline(
    BootIdentity("172.16.0.2", 24, "172.16.0.1", "172.16.0.1", "calm-otter"), tsc_khz=2995200
)


def spec(**changes: object) -> LaunchSpec:
    values: dict[str, object] = {
        "vm_id": "0123456789ab",
        "name": "calm-otter",
        "vcpu": 2,
        "memory_mib": 1024,
        "kernel": Path("/images/debian/vmlinuz"),
        "initrd": Path("/images/debian/initrd.img"),
        "cmdline": CMDLINE,
        "root_disk": VM_DIR / "root.qcow2",
        "work_disk": VM_DIR / "work.ext4",
        "tap": "bgr0123456789ab",
        "mac": "02:aa:bb:cc:dd:ee",
        "vm_dir": VM_DIR,
        "accel": "tcg",
    }
    values.update(changes)
    return LaunchSpec(**values)  # type: ignore[arg-type]


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def options(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == flag]


def test_microvm_with_legacy_timers() -> None:
    argv = qemu_argv("qemu-system-x86_64", spec())
    assert argv[0] == "qemu-system-x86_64"
    machine = option(argv, "-M").split(",")
    assert machine[0] == "microvm"
    assert {"pit=on", "pic=on", "rtc=on"} <= set(machine[1:])


def test_tcg_accel_and_cpu() -> None:
    argv = qemu_argv("qemu", spec())
    assert option(argv, "-accel") == "tcg,tb-size=256"
    assert option(argv, "-cpu") == "max"


def test_kvm_accel_uses_host_cpu() -> None:
    argv = qemu_argv("qemu", spec(accel="kvm"))
    assert option(argv, "-accel") == "kvm"
    assert option(argv, "-cpu") == "host"


def test_kernel_cmdline_is_one_argument() -> None:
    argv = qemu_argv("qemu", spec())
    assert option(argv, "-append") == CMDLINE
    assert option(argv, "-kernel") == "/images/debian/vmlinuz"
    assert option(argv, "-initrd") == "/images/debian/initrd.img"


def test_no_initrd() -> None:
    assert "-initrd" not in qemu_argv("qemu", spec(initrd=None))


def test_tap_and_mac() -> None:
    argv = qemu_argv("qemu", spec())
    assert "tap,id=net0,ifname=bgr0123456789ab,script=no,downscript=no" in options(argv, "-netdev")
    assert "virtio-net-device,netdev=net0,mac=02:aa:bb:cc:dd:ee" in options(argv, "-device")


def test_user_mode_networking_replaces_the_tap() -> None:
    argv = qemu_argv("qemu", spec(user_net=UserNet(ssh_port=40022, restrict=True)))
    [netdev] = options(argv, "-netdev")
    assert netdev.startswith("user,id=net0,") and "hostfwd=tcp:127.0.0.1:40022-:22" in netdev
    assert "bgr0123456789ab" not in " ".join(argv)
    assert "virtio-net-device,netdev=net0,mac=02:aa:bb:cc:dd:ee" in options(argv, "-device")


def test_size_disks_console_and_control() -> None:
    argv = qemu_argv("qemu", spec(vcpu=4, memory_mib=4096))
    assert option(argv, "-smp") == "4"
    assert option(argv, "-m") == "4096"
    drives = options(argv, "-drive")
    assert any(f"file={VM_DIR}/root.qcow2,format=qcow2" in d for d in drives)
    assert any(f"file={VM_DIR}/work.ext4,format=raw" in d for d in drives)
    assert option(argv, "-chardev") == f"file,id=console,path={VM_DIR}/console.log,append=on"
    assert option(argv, "-qmp") == f"unix:{VM_DIR}/control.sock,server=on,wait=off"
    # The daemon recognises its own VMMs after a restart by the VM dir in the command line.
    assert sum(str(VM_DIR) in word for word in argv) >= 4


def test_template_vm_writes_its_ram_through_a_shared_file_and_has_the_agent_port() -> None:
    argv = qemu_argv("qemu-system-x86_64", spec(
        memory_file=Path("/t/memory"), memory_shared=True, agent=True,
    ))
    machine = argv[argv.index("-M") + 1]
    assert machine.endswith(",memory-backend=mem")
    assert "memory-backend-file,id=mem,size=1024M,mem-path=/t/memory,share=on" in argv
    assert f"socket,id=agent,path={VM_DIR}/agent.sock,server=on,wait=off" in argv
    assert "virtserialport,chardev=agent,name=org.banger.agent" in argv
    assert "-incoming" not in argv


def test_restored_vm_maps_the_template_copy_on_write_and_waits_for_its_state() -> None:
    template = qemu_argv("qemu-system-x86_64", spec(
        memory_file=Path("/t/memory"), memory_shared=True, agent=True,
    ))
    restored = qemu_argv("qemu-system-x86_64", spec(
        memory_file=Path("/t/memory"), memory_shared=False, agent=True, incoming=True,
    ))
    assert "memory-backend-file,id=mem,size=1024M,mem-path=/t/memory,share=off" in restored
    assert restored[-3:] == ["-S", "-incoming", "defer"]

    def devices(argv: list[str]) -> list[str]:
        return [argv[i + 1].split(",")[0] for i, a in enumerate(argv) if a == "-device"]

    # The same devices in the same order: virtio-mmio slots must match the saved state.
    assert devices(template) == devices(restored)


def test_cold_vm_has_plain_ram_and_no_agent() -> None:
    argv = qemu_argv("qemu-system-x86_64", spec())
    assert not any("memory-backend" in a or "virtserialport" in a for a in argv)


def test_qemu_runs_in_its_seccomp_sandbox() -> None:
    argv = qemu_argv("qemu", spec())
    sandbox = option(argv, "-sandbox").split(",")
    assert sandbox[0] == "on"
    assert {"obsolete=deny", "elevateprivileges=deny", "spawn=deny",
            "resourcecontrol=deny"} <= set(sandbox)
    assert "-runas" not in argv


def test_a_root_daemons_qemu_drops_to_the_vmm_user_once_it_opened_its_files() -> None:
    argv = qemu_argv("qemu", spec(), RunAs(996, 993))
    assert option(argv, "-runas") == "996:993"
    # set*id is how -runas drops (after the filter is in place); nothing spawns still.
    sandbox = set(option(argv, "-sandbox").split(","))
    assert {"elevateprivileges=allow", "spawn=deny", "resourcecontrol=deny"} <= sandbox


def test_the_console_is_appended_to_so_its_head_can_be_cut() -> None:
    argv = qemu_argv("qemu", spec())
    assert f"file,id=console,path={VM_DIR}/console.log,append=on" in argv


def test_the_backend_knows_its_own_vmm_processes() -> None:
    qemu = QemuHypervisor()
    assert qemu.owns(qemu_argv("qemu-system-x86_64", spec()))
    assert not qemu.owns(["firecracker", "--api-sock", str(VM_DIR / "firecracker.sock")])


async def test_a_deleted_vms_uid_is_given_back(tmp_path: Path) -> None:
    uids = FixedVMMUids(RunAs(1900000001, 1900000001))
    qemu = QemuHypervisor("qemu-system-x86_64", Confinement(uids=uids))
    await qemu.release(tmp_path)
    assert uids.released == [tmp_path]
