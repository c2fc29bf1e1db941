from __future__ import annotations

from dataclasses import replace

from banger.core.template import (
    FileFacts,
    TemplateInputs,
    TemplateMeta,
    differences,
    template_key,
)

INPUTS = TemplateInputs(
    backend="qemu",
    image="debian-bookworm",
    rootfs=FileFacts("/i/rootfs.ext4", 3 << 30, 1),
    kernel=FileFacts("/i/vmlinuz", 14 << 20, 2),
    initrd=FileFacts("/i/initrd.img", 5 << 20, 3),
    vmm_version="QEMU emulator version 7.2.22",
    accel="tcg",
    vcpu=2,
    memory_mib=1024,
)


def test_key_is_stable_and_covers_every_input() -> None:
    assert template_key(INPUTS) == template_key(replace(INPUTS))
    changes = [
        {"backend": "firecracker"},
        {"rootfs": FileFacts("/i/rootfs.ext4", 3 << 30, 99)},
        {"kernel": FileFacts("/k/other", 1, 1)},
        {"initrd": None},
        {"vmm_version": "QEMU emulator version 8.2.0"},
        {"accel": "kvm"},
        {"vcpu": 4},
        {"memory_mib": 2048},
        {"aslr": False},
        {"nic": "user"},
    ]
    keys = {template_key(replace(INPUTS, **change)) for change in changes}  # type: ignore[arg-type]
    assert len(keys) == len(changes) and template_key(INPUTS) not in keys


def test_tap_templates_keep_the_key_they_had_before_the_nic_was_recorded() -> None:
    assert template_key(INPUTS) == "8ed5b1c895a7006e85d21723ca3c38a2"


def test_meta_round_trips() -> None:
    meta = TemplateMeta(INPUTS, template_key(INPUTS), 1_795_000_000.5, 31.2)
    assert TemplateMeta.from_json(meta.to_json()) == meta
    no_initrd = replace(meta, inputs=replace(INPUTS, initrd=None))
    assert TemplateMeta.from_json(no_initrd.to_json()) == no_initrd


def test_differences_say_what_changed() -> None:
    assert differences(INPUTS, INPUTS) == []
    changed = replace(INPUTS, vmm_version="QEMU 8", memory_mib=2048,
                      rootfs=FileFacts("/i/rootfs.ext4", 1, 1))
    assert differences(INPUTS, changed) == [
        "the image changed", "QEMU changed", "the VM size changed"
    ]
    assert differences(INPUTS, replace(INPUTS, aslr=False)) == [
        "the guest_aslr setting changed"
    ]
    assert differences(INPUTS, replace(INPUTS, nic="user")) == ["the network mode changed"]
    firecracker = replace(INPUTS, backend="firecracker", vmm_version="Firecracker v1.16.1")
    assert differences(firecracker, replace(firecracker, vmm_version="Firecracker v1.17.0")) == [
        "Firecracker changed"
    ]
