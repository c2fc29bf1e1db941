"""`image export` / `image import` through the API with the real client: the bundle file is
the client's, its bytes stream over the socket both ways (the codec is PlainCodec)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from banger.core.errors import (
    BadBundle,
    DaemonUnavailable,
    HostError,
    ImageNotFound,
    InvalidInput,
    NameTaken,
)
from banger.core.models import ProgressEvent
from tests.support.api import Api

IMAGE = "debian-bookworm"


def image_dirs(api: Api) -> list[str]:
    return sorted(p.name for p in api.env.paths.images_dir.iterdir())


async def export(api: Api, out: Path) -> None:
    await export_named(api, IMAGE, out)


async def export_named(api: Api, name: str, out: Path) -> None:
    await api.call(api.client.export_image, name, str(out))


async def test_export_writes_the_clients_file_and_import_uploads_it(
    api: Api, tmp_path: Path
) -> None:
    await api.call(api.client.pull_image, IMAGE)
    out = tmp_path / "img.tar.zst"
    events: list[ProgressEvent] = []
    result = await api.call(api.client.export_image, IMAGE, str(out), on_progress=events.append)
    assert result == {"image": IMAGE, "path": str(out), "bytes": out.stat().st_size}
    assert events[0].message.startswith(f"exporting {IMAGE}: ")
    assert events[-1].fraction == 1.0 and f"exported {IMAGE} to {out}" in events[-1].message
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    events.clear()
    copy = await api.call(api.client.import_image, str(out), as_name="copy",
                          on_progress=events.append)
    assert copy.name == "copy" and copy.source.startswith("import: img.tar.zst")
    assert events[0].stage == "import" and events[0].message.startswith("importing img.tar.zst")
    assert [e.fraction for e in events if e.message.startswith("importing")][-1] == 1.0
    assert events[-1].message.startswith("imported copy")
    original = await api.call(api.client.get_image, IMAGE)
    assert Path(copy.rootfs).read_bytes() == Path(original.rootfs).read_bytes()


async def test_a_taken_name_is_refused_before_the_upload(api: Api, tmp_path: Path) -> None:
    await api.call(api.client.pull_image, IMAGE)
    out = tmp_path / "img.tar.zst"
    await export(api, out)
    with pytest.raises(NameTaken) as renamed:
        await api.call(api.client.import_image, str(out), as_name=IMAGE)
    assert renamed.value.hint == "pick another name"
    with pytest.raises(NameTaken) as kept:
        await api.call(api.client.import_image, str(out))
    assert "--name" in kept.value.hint
    with pytest.raises(InvalidInput, match="does not exist"):
        await api.call(api.client.import_image, str(tmp_path / "nope"))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
async def test_a_damaged_file_leaves_nothing_on_the_daemons_side(
    api: Api, tmp_path: Path, damage: str
) -> None:
    await api.call(api.client.pull_image, IMAGE)
    out = tmp_path / "img.tar.zst"
    await export(api, out)
    data = bytearray(out.read_bytes())
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    else:
        data[data.index(b"fake kernel")] ^= 0x20
    out.write_bytes(bytes(data))
    before = image_dirs(api)
    with pytest.raises(BadBundle, match="tar stream" if damage == "truncate" else "sha256"):
        await api.call(api.client.import_image, str(out), as_name="copy")
    assert image_dirs(api) == before
    assert [i.name for i in await api.call(api.client.list_images)] == [IMAGE]


class FailingCodec:
    """Writes some of the bundle, then fails, as zstd would on a full disk."""

    @contextlib.contextmanager
    def compress(self, out: IO[bytes]) -> Iterator[IO[bytes]]:
        out.write(b"x" * 300_000)
        out.flush()
        raise HostError("zstd failed: no space left")
        yield out  # pragma: no cover

    @contextlib.contextmanager
    def decompress(self, src: IO[bytes]) -> Iterator[IO[bytes]]:
        yield src


async def test_an_export_cut_short_leaves_no_file(api: Api, tmp_path: Path) -> None:
    await api.call(api.client.pull_image, IMAGE)
    assert api.env.services.bundles is not None
    api.env.services.bundles._codec = FailingCodec()
    outputs = tmp_path / "out"
    outputs.mkdir()
    with pytest.raises(DaemonUnavailable, match="cut short"):
        await export(api, outputs / "img.tar.zst")
    assert list(outputs.iterdir()) == []


async def test_an_export_that_fails_at_once_is_its_error(api: Api, tmp_path: Path) -> None:
    outputs = tmp_path / "out"
    outputs.mkdir()
    with pytest.raises(ImageNotFound, match="ghost"):
        await export_named(api, "ghost", outputs / "x")
    await api.call(api.client.pull_image, IMAGE)
    with pytest.raises(InvalidInput, match="is not a directory"):
        await export(api, outputs / "no" / "x")
    assert list(outputs.iterdir()) == []


async def test_export_never_overwrites_the_image_store(api: Api) -> None:
    image = await api.call(api.client.pull_image, IMAGE)
    before = Path(image.rootfs).read_bytes()
    for target in (image.rootfs, str(api.env.paths.images_dir / "x.tar.zst")):
        with pytest.raises(InvalidInput, match="image store"):
            await api.call(api.client.export_image, IMAGE, target)
    assert Path(image.rootfs).read_bytes() == before
