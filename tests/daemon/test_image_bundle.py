"""`image export` / `image import` and `image delete --force` on fake adapters (the bundle
codec is PlainCodec; tests/host/test_bundle.py covers zstd)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from banger.core.errors import (
    BadBundle,
    InvalidInput,
    NameTaken,
    PermissionDenied,
    ResourceBusy,
)
from banger.core.models import ProgressEvent, VMState
from banger.daemon.imagebundle import ImageBundles, Peer
from banger.daemon.progress import no_progress
from tests.support.daemon_env import Env

CATALOG_IMAGE = "debian-bookworm"


def bundles(env: Env) -> ImageBundles:
    assert env.services.bundles is not None
    return env.services.bundles


def image_dirs(env: Env) -> list[str]:
    return sorted(p.name for p in env.paths.images_dir.iterdir())


async def exported(env: Env, tmp_path: Path) -> Path:
    await env.services.images.ensure(CATALOG_IMAGE, no_progress)
    out = tmp_path / "out" / "img.tar.zst"
    out.parent.mkdir()
    await bundles(env).export(CATALOG_IMAGE, str(out), None, no_progress)
    return out


async def test_export_then_import_under_a_new_name(env: Env, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    await env.services.images.ensure(CATALOG_IMAGE, no_progress)
    out = tmp_path / "img.tar.zst"
    result = await bundles(env).export(CATALOG_IMAGE, str(out), None, events.append)
    assert result["path"] == str(out) and out.is_file()
    assert result["members"] == ["rootfs.ext4", "vmlinuz", "initrd.img"]
    assert not list(tmp_path.glob(".*partial"))
    assert events[-1].fraction == 1.0 and "exported" in events[-1].message

    original = env.services.images.get(CATALOG_IMAGE)
    copy = await bundles(env).import_(str(out), "copy", None, no_progress)
    assert copy.managed and copy.name == "copy"
    assert copy.source.startswith(f"import: {out}") and original.source in copy.source
    assert copy.created_at == original.created_at
    assert copy.recipe_version == original.recipe_version
    for field in ("rootfs", "kernel", "initrd"):
        mine, theirs = Path(getattr(copy, field)), Path(getattr(original, field))
        assert mine.parent == env.paths.images_dir / "copy"
        assert mine.read_bytes() == theirs.read_bytes()
    assert env.services.images.get("copy") == copy
    # The copy is an ordinary managed image: a VM can use it, delete removes its files.
    vm = await env.services.vms.create(
        name="dev", image="copy", vcpu=None, memory_mib=None, disk_size=None, start=False
    )
    assert vm.image == "copy"
    await env.services.vms.delete("dev", force=False)
    env.services.images.delete("copy")
    assert "copy" not in image_dirs(env)


async def test_import_refuses_a_taken_name_and_leaves_nothing(
    env: Env, tmp_path: Path
) -> None:
    out = await exported(env, tmp_path)
    before = image_dirs(env)
    with pytest.raises(NameTaken, match=CATALOG_IMAGE) as info:
        await bundles(env).import_(str(out), None, None, no_progress)
    assert "--name" in info.value.hint
    with pytest.raises(NameTaken):
        await bundles(env).import_(str(out), CATALOG_IMAGE, None, no_progress)
    assert image_dirs(env) == before
    assert [i.name for i in env.services.images.all()] == [CATALOG_IMAGE]


async def test_import_keeps_the_exported_name_when_free(env: Env, tmp_path: Path) -> None:
    out = await exported(env, tmp_path)
    env.services.images.delete(CATALOG_IMAGE)
    image = await bundles(env).import_(str(out), None, None, no_progress)
    assert image.name == CATALOG_IMAGE and image.managed


@pytest.mark.parametrize("damage", ["truncate", "flip"])
async def test_a_damaged_bundle_leaves_no_row_and_no_files(
    env: Env, tmp_path: Path, damage: str
) -> None:
    out = await exported(env, tmp_path)
    data = bytearray(out.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[data.index(b"fake kernel")] ^= 0x20
    out.write_bytes(bytes(data))
    before = image_dirs(env)
    with pytest.raises(BadBundle):
        await bundles(env).import_(str(out), "copy", None, no_progress)
    assert image_dirs(env) == before
    assert [i.name for i in env.services.images.all()] == [CATALOG_IMAGE]


@pytest.mark.parametrize("path, error", [
    ("relative.tar.zst", InvalidInput),
    ("/nonexistent-dir-banger/x.tar.zst", InvalidInput),
])
async def test_export_validates_the_output_path(
    env: Env, path: str, error: type[Exception]
) -> None:
    await env.services.images.ensure(CATALOG_IMAGE, no_progress)
    with pytest.raises(error):
        await bundles(env).export(CATALOG_IMAGE, path, None, no_progress)


async def test_export_refuses_a_directory_or_symlink_target(env: Env, tmp_path: Path) -> None:
    await env.services.images.ensure(CATALOG_IMAGE, no_progress)
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    for name in ("dir", "link"):
        with pytest.raises(InvalidInput, match="not a regular file"):
            await bundles(env).export(CATALOG_IMAGE, str(tmp_path / name), None, no_progress)
    assert not (tmp_path / "elsewhere").exists()


async def test_import_validates_the_bundle_path(env: Env, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not absolute"):
        await bundles(env).import_("x.tar.zst", None, None, no_progress)
    with pytest.raises(InvalidInput, match="does not exist"):
        await bundles(env).import_(str(tmp_path / "nope"), None, None, no_progress)


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs a root daemon")


@root_only
async def test_a_root_daemon_writes_as_the_asking_user(env: Env, tmp_path: Path) -> None:
    await env.services.images.ensure(CATALOG_IMAGE, no_progress)
    user = Peer(4242, 4243)
    private = tmp_path / "private"
    private.mkdir(mode=0o755)
    with pytest.raises(PermissionDenied):
        await bundles(env).export(CATALOG_IMAGE, str(private / "x.tar.zst"), user, no_progress)
    assert list(private.iterdir()) == []
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, user.uid, user.gid)
    out = theirs / "x.tar.zst"
    await bundles(env).export(CATALOG_IMAGE, str(out), user, no_progress)
    assert (out.stat().st_uid, out.stat().st_gid) == (user.uid, user.gid)
    out.chmod(0o600)
    os.chown(out, 0, 0)
    with pytest.raises(PermissionDenied, match="cannot read"):
        await bundles(env).import_(str(out), "copy", user, no_progress)


async def test_delete_force_deletes_the_stopped_vms_with_the_image(env: Env) -> None:
    vms = env.services.vms
    for name in ("a", "b"):
        await vms.create(name=name, image=None, vcpu=None, memory_mib=None, disk_size=None,
                         start=False)
    with pytest.raises(ResourceBusy, match="a, b") as info:
        env.services.images.delete(CATALOG_IMAGE)
    assert "--force" in info.value.hint
    await env.services.images.delete_with_vms(CATALOG_IMAGE, vms)
    assert vms.all() == [] and env.services.images.all() == []
    assert image_dirs(env) == []


async def test_delete_force_is_refused_while_a_vm_runs(env: Env) -> None:
    vms = env.services.vms
    await vms.create(name="idle", image=None, vcpu=None, memory_mib=None, disk_size=None,
                     start=False)
    running = await vms.create(name="busy", image=None, vcpu=None, memory_mib=None,
                               disk_size=None, start=True)
    assert running.state == VMState.RUNNING
    with pytest.raises(ResourceBusy, match="busy") as info:
        await env.services.images.delete_with_vms(CATALOG_IMAGE, vms)
    assert "vm stop busy" in info.value.hint
    assert sorted(vm.name for vm in vms.all()) == ["busy", "idle"]
    assert env.services.images.get(CATALOG_IMAGE)


async def test_export_never_overwrites_the_image_store(env: Env, tmp_path: Path) -> None:
    image = await env.services.images.ensure(CATALOG_IMAGE, no_progress)
    before = Path(image.rootfs).read_bytes()
    for target in (image.rootfs, str(env.paths.images_dir / "x.tar.zst")):
        with pytest.raises(InvalidInput, match="image store"):
            await bundles(env).export(CATALOG_IMAGE, target, None, no_progress)
    assert Path(image.rootfs).read_bytes() == before
