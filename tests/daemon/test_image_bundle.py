"""`image export` / `image import` and `image delete --force` on fake adapters (the bundle
codec is PlainCodec; tests/host/test_bundle.py covers zstd). The bundle's bytes go in and
out as async pieces, as the API streams them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from banger.core.errors import (
    BadBundle,
    ImageNotFound,
    InvalidInput,
    InvalidName,
    NameTaken,
    ResourceBusy,
)
from banger.core.models import ProgressEvent, VMState
from banger.daemon.imagebundle import ImageBundles
from banger.daemon.progress import no_progress
from tests.support.daemon_env import Env

CATALOG_IMAGE = "debian-bookworm"


def bundles(env: Env) -> ImageBundles:
    assert env.services.bundles is not None
    return env.services.bundles


def image_dirs(env: Env) -> list[str]:
    return sorted(p.name for p in env.paths.images_dir.iterdir())


async def exported(env: Env) -> bytes:
    await env.services.images.ensure(CATALOG_IMAGE, no_progress)
    return b"".join([piece async for piece in bundles(env).export(CATALOG_IMAGE)])


async def upload(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 4096):
        yield data[start:start + 4096]


async def test_export_then_import_under_a_new_name(env: Env) -> None:
    data = await exported(env)
    original = env.services.images.get(CATALOG_IMAGE)
    events: list[ProgressEvent] = []
    copy = await bundles(env).import_(upload(data), "copy", "img.tar.zst", events.append)
    assert copy.managed and copy.name == "copy"
    assert copy.source.startswith("import: img.tar.zst") and original.source in copy.source
    assert copy.created_at == original.created_at
    assert copy.recipe_version == original.recipe_version
    assert events[-1].fraction == 1.0 and "imported copy" in events[-1].message
    for field in ("rootfs", "kernel", "initrd"):
        mine, theirs = Path(getattr(copy, field)), Path(getattr(original, field))
        assert mine.parent == env.paths.images_dir / "copy"
        assert mine.read_bytes() == theirs.read_bytes()
    assert env.services.images.get("copy") == copy
    assert not [d for d in image_dirs(env) if d.startswith(".import")]
    # The copy is an ordinary managed image: a VM can use it, delete removes its files.
    vm = await env.services.vms.create(
        name="dev", image="copy", vcpu=None, memory_mib=None, disk_size=None, start=False
    )
    assert vm.image == "copy"
    await env.services.vms.delete("dev", force=False)
    env.services.images.delete("copy")
    assert "copy" not in image_dirs(env)


async def test_import_refuses_a_taken_name_and_leaves_nothing(env: Env) -> None:
    data = await exported(env)
    before = image_dirs(env)
    with pytest.raises(NameTaken, match=CATALOG_IMAGE) as info:
        await bundles(env).import_(upload(data), None, "b", no_progress)
    assert "--name" in info.value.hint
    with pytest.raises(NameTaken):
        bundles(env).check_new_name(CATALOG_IMAGE)  # before a byte of the upload is read
    with pytest.raises(InvalidName):
        bundles(env).check_new_name("no/slashes")
    assert image_dirs(env) == before
    assert [i.name for i in env.services.images.all()] == [CATALOG_IMAGE]


async def test_import_keeps_the_exported_name_when_free(env: Env) -> None:
    data = await exported(env)
    env.services.images.delete(CATALOG_IMAGE)
    image = await bundles(env).import_(upload(data), None, "b", no_progress)
    assert image.name == CATALOG_IMAGE and image.managed


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
async def test_a_damaged_bundle_leaves_no_row_and_no_files(env: Env, damage: str) -> None:
    data = bytearray(await exported(env))
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[data.index(b"fake kernel")] ^= 0x20
    else:
        data = bytearray()
    before = image_dirs(env)
    with pytest.raises(BadBundle):
        await bundles(env).import_(upload(bytes(data)), "copy", "b", no_progress)
    assert image_dirs(env) == before
    assert [i.name for i in env.services.images.all()] == [CATALOG_IMAGE]


async def test_an_upload_cut_short_leaves_nothing(env: Env) -> None:
    data = await exported(env)

    async def cut() -> AsyncIterator[bytes]:
        yield data[: len(data) // 2]
        raise ConnectionResetError("the client went away")

    before = image_dirs(env)
    with pytest.raises(ConnectionResetError):
        await bundles(env).import_(cut(), "copy", "b", no_progress)
    assert image_dirs(env) == before
    assert [i.name for i in env.services.images.all()] == [CATALOG_IMAGE]


async def test_export_refuses_before_the_first_byte(env: Env) -> None:
    with pytest.raises(ImageNotFound):
        bundles(env).export("ghost")
    image = await env.services.images.ensure(CATALOG_IMAGE, no_progress)
    Path(image.kernel).unlink()
    with pytest.raises(InvalidInput, match="missing its file"):
        bundles(env).export(CATALOG_IMAGE)


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
