from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from banger.core.errors import (
    ImageBuildFailed,
    ImageNotFound,
    InvalidInput,
    InvalidName,
    ResourceBusy,
)
from banger.core.imagerecipe import RECIPE_VERSION
from banger.core.models import ProgressEvent
from banger.daemon.images import ImageService
from banger.daemon.progress import no_progress
from banger.daemon.store import Store
from banger.host.imagebuild import FakeImageBuilder
from tests.daemon.conftest import APT_SOURCES, Env
from tests.daemon.fakes import SlowImageBuilder

CATALOG_IMAGE = "debian-bookworm"


class Images:
    """An ImageService on its own store, with the VMs using each image set by the test."""

    def __init__(self, root: Path, builder: FakeImageBuilder) -> None:
        self.store = Store(root / "banger.db")
        self.dir = root / "images"
        self.builder = builder
        self.users: dict[str, list[str]] = {}
        self.service = ImageService(
            self.store, self.dir, builder, lambda suite: list(APT_SOURCES),
            lambda name: self.users.get(name, []),
        )


@pytest.fixture
def images(tmp_path: Path) -> Iterator[Images]:
    made = Images(tmp_path, FakeImageBuilder())
    yield made
    made.store.close()


def user_files(root: Path) -> tuple[str, str, str]:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("rootfs.ext4", "vmlinuz", "initrd.img"):
        (root / name).write_bytes(b"x" * 4096)
    return str(root / "rootfs.ext4"), str(root / "vmlinuz"), str(root / "initrd.img")


async def test_ensure_builds_a_catalog_image_once(images: Images) -> None:
    events: list[ProgressEvent] = []
    image = await images.service.ensure(CATALOG_IMAGE, events.append)
    again = await images.service.ensure(CATALOG_IMAGE, events.append)
    assert again == image
    assert len(images.builder.calls) == 1
    assert images.builder.calls[0]["suite"] == "bookworm"
    assert images.builder.calls[0]["apt_sources"] == APT_SOURCES
    final = images.dir / CATALOG_IMAGE
    assert image.rootfs == str(final / "rootfs.ext4")
    assert image.kernel == str(final / "vmlinuz")
    assert image.initrd == str(final / "initrd.img")
    assert image.managed
    assert image.recipe_version == RECIPE_VERSION
    assert all(Path(p).is_file() for p in (image.rootfs, image.kernel, image.initrd or ""))
    # The build happened aside and only the finished image was moved into place.
    assert sorted(p.name for p in images.dir.iterdir()) == [CATALOG_IMAGE]
    assert any("building" in e.message for e in events)


async def test_concurrent_ensure_builds_once(tmp_path: Path) -> None:
    builder = SlowImageBuilder()
    images = Images(tmp_path, builder)
    waiting = [
        asyncio.create_task(images.service.ensure(CATALOG_IMAGE, no_progress)) for _ in range(3)
    ]
    await asyncio.sleep(0.01)
    builder.release.set()
    results = await asyncio.gather(*waiting)
    assert len(builder.calls) == 1
    assert results[0] == results[1] == results[2]
    images.store.close()


async def test_pull_force_rebuilds(images: Images) -> None:
    first = await images.service.pull(CATALOG_IMAGE, no_progress)
    second = await images.service.pull(CATALOG_IMAGE, no_progress, force=True)
    assert len(images.builder.calls) == 2
    assert second.rootfs == first.rootfs
    assert Path(second.rootfs).is_file()


async def test_pull_force_is_refused_while_vms_use_the_image(images: Images) -> None:
    await images.service.pull(CATALOG_IMAGE, no_progress)
    images.users[CATALOG_IMAGE] = ["dev"]
    with pytest.raises(ResourceBusy, match="dev"):
        await images.service.pull(CATALOG_IMAGE, no_progress, force=True)
    assert len(images.builder.calls) == 1


async def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    images = Images(tmp_path, FakeImageBuilder(fail_with=ImageBuildFailed("mirror down")))
    with pytest.raises(ImageBuildFailed, match="mirror down"):
        await images.service.ensure(CATALOG_IMAGE, no_progress)
    assert images.service.list() == []
    assert list(images.dir.iterdir()) == []
    images.store.close()


async def test_unknown_images(images: Images) -> None:
    with pytest.raises(ImageNotFound) as info:
        await images.service.ensure("ubuntu-noble", no_progress)
    assert "register" in info.value.hint
    with pytest.raises(ImageNotFound, match="catalog"):
        await images.service.pull("ubuntu-noble", no_progress)
    assert images.builder.calls == []


def test_missing_catalog_image_hints_at_pull(images: Images) -> None:
    with pytest.raises(ImageNotFound) as info:
        images.service.get(CATALOG_IMAGE)
    assert f"banger image pull {CATALOG_IMAGE}" in info.value.hint


def test_register_an_image(images: Images, tmp_path: Path) -> None:
    rootfs, kernel, initrd = user_files(tmp_path / "mine")
    image = images.service.register("mine", rootfs, kernel, initrd)
    assert not image.managed
    assert image.source == "registered"
    assert (image.rootfs, image.kernel, image.initrd) == (rootfs, kernel, initrd)
    assert images.service.get("mine") == image
    assert images.builder.calls == []


def test_register_without_initrd(images: Images, tmp_path: Path) -> None:
    rootfs, kernel, _ = user_files(tmp_path / "mine")
    assert images.service.register("mine", rootfs, kernel, None).initrd is None


@pytest.mark.parametrize("name", ["Mine", "my_image", "-x", ""])
def test_register_validates_the_name(images: Images, tmp_path: Path, name: str) -> None:
    rootfs, kernel, initrd = user_files(tmp_path / "mine")
    with pytest.raises(InvalidName):
        images.service.register(name, rootfs, kernel, initrd)
    assert images.service.list() == []


def test_register_validates_the_files(images: Images, tmp_path: Path) -> None:
    rootfs, kernel, initrd = user_files(tmp_path / "mine")
    cases = [
        ("relative/rootfs.ext4", kernel, initrd, "not an absolute path"),
        (rootfs, str(tmp_path / "missing"), initrd, "does not exist"),
        (rootfs, kernel, str(tmp_path), "not a file"),
    ]
    for bad_rootfs, bad_kernel, bad_initrd, message in cases:
        with pytest.raises(InvalidInput, match=message):
            images.service.register("mine", bad_rootfs, bad_kernel, bad_initrd)
    assert images.service.list() == []


def test_register_refuses_a_taken_name(images: Images, tmp_path: Path) -> None:
    rootfs, kernel, initrd = user_files(tmp_path / "mine")
    images.service.register("mine", rootfs, kernel, initrd)
    with pytest.raises(InvalidInput, match="already exists"):
        images.service.register("mine", rootfs, kernel, None)
    assert images.service.get("mine").initrd == initrd


def test_delete_registered_keeps_the_users_files(images: Images, tmp_path: Path) -> None:
    rootfs, kernel, initrd = user_files(tmp_path / "mine")
    images.service.register("mine", rootfs, kernel, initrd)
    images.service.delete("mine")
    assert images.service.list() == []
    assert all(Path(p).is_file() for p in (rootfs, kernel, initrd))


async def test_delete_managed_removes_its_files(images: Images) -> None:
    image = await images.service.ensure(CATALOG_IMAGE, no_progress)
    images.service.delete(CATALOG_IMAGE)
    assert not Path(image.rootfs).parent.exists()
    with pytest.raises(ImageNotFound):
        images.service.delete(CATALOG_IMAGE)


async def test_delete_is_refused_while_a_vm_uses_the_image(env: Env) -> None:
    vm = await env.services.vms.create(
        name="dev", image=None, vcpu=None, memory_mib=None, disk_size=None, start=False
    )
    with pytest.raises(ResourceBusy, match="dev") as info:
        env.services.images.delete(CATALOG_IMAGE)
    assert "delete those VMs" in info.value.hint
    assert Path(env.services.images.get(CATALOG_IMAGE).rootfs).is_file()
    await env.services.vms.delete(vm.name, force=False)
    env.services.images.delete(CATALOG_IMAGE)
    assert env.services.images.list() == []


async def test_promote_copies_sparse_and_refuses_in_use(env: Env, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.ext4"
    with open(rootfs, "wb") as f:
        f.truncate(32 << 20)
        f.seek(1 << 20)
        f.write(b"data")
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    env.services.images.register("reg", str(rootfs), str(kernel), None)
    promoted = await env.services.images.promote("reg")
    assert promoted.managed and Path(promoted.rootfs).parent.name == "reg"
    copied = Path(promoted.rootfs)
    assert copied.stat().st_size == 32 << 20
    assert copied.stat().st_blocks * 512 < 1 << 20
    assert rootfs.exists()
    with pytest.raises(InvalidInput):
        await env.services.images.promote("reg")
    env.services.images.register("reg2", str(rootfs), str(kernel), None)
    await env.services.vms.create(name="e", image="reg2", vcpu=None, memory_mib=None,
                                  disk_size=None, start=False)
    with pytest.raises(ResourceBusy):
        await env.services.images.promote("reg2")
