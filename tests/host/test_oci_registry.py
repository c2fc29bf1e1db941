"""The registry client and the whole pull against a real local registry (Debian's
docker-registry, pushed to with skopeo), with umoci as the flattening oracle."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from banger.core import perlkit
from banger.core.errors import ChecksumMismatch, ImageBuildFailed, RegistryError, UnsafeLayer
from banger.core.models import ProgressEvent
from banger.core.oci import parse_reference
from banger.host.oci import BlobCache, RegistryClient
from banger.host.ocipull import OCIPuller
from tests.support.host_fakes import FakePerlKits
from tests.support.ocitools import Entry, Layout, Registry, layer_tar, local_registry, missing_tools

pytestmark = pytest.mark.skipif(
    bool(missing_tools(("docker-registry", "skopeo", "zstd"))),
    reason="needs docker-registry, skopeo and zstd (apt-get install docker-registry skopeo zstd)",
)

BASE = [
    Entry("etc", "dir", mode=0o755), Entry("etc/os-release", data=b"ID=test\n"),
    Entry("etc/gone", data=b"x"), Entry("opq", "dir", mode=0o755), Entry("opq/old", data=b"o"),
    Entry("usr", "dir", mode=0o755), Entry("usr/bin", "dir", mode=0o755),
    Entry("usr/bin/su", data=b"#!/bin/sh\n", mode=0o4755),
    Entry("usr/bin/su2", "hardlink", link="usr/bin/su"),
    Entry("bin", "symlink", link="usr/bin"),
    Entry("home", "dir", mode=0o755), Entry("home/me", "dir", mode=0o750, uid=1000, gid=1000),
    Entry("home/me/notes", data=b"mine", uid=1000, gid=1000, mode=0o600),
]
MIDDLE = [Entry("etc/.wh.gone"), Entry("opq", "dir", mode=0o755), Entry("opq/.wh..wh..opq"),
          Entry("opq/new", data=b"n"), Entry("var", "dir", mode=0o755),
          Entry("var/big", data=os.urandom(300_000))]
TOP = [Entry("etc/motd", data=b"hello from the top layer\n", mode=0o644)]


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with local_registry() as reg:
        yield reg


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Path:
    root = tmp_path_factory.mktemp("layout")
    image = Layout(root)
    amd64 = image.image([(layer_tar(BASE), "gzip"), (layer_tar(MIDDLE), "zstd"),
                         (layer_tar(TOP), "")])
    arm64 = image.image([(layer_tar([Entry("arm", data=b"wrong arch")]), "gzip")], arch="arm64")
    image.tag("multi", amd64)
    # The same layers, all gzip: umoci 0.4 (the oracle) cannot read zstd layers.
    image.tag("oracle", image.image([layer_tar(BASE), layer_tar(MIDDLE), layer_tar(TOP)]))
    image.tag_index("list", [arm64, amd64])
    registry.push(root, "list", "test/multi:list", all_images=True)
    registry.push(root, "multi", "test/multi:single")
    return root


def tree_listing(root: Path) -> dict[str, tuple[object, ...]]:
    """Type, mode, owner, and content or link target of everything under root."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = os.lstat(path)
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                extra: object = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                extra = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                extra = None
            found[rel] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid,
                          info.st_gid, extra)
    return found


async def test_manifest_list_resolves_to_amd64_and_layers_are_cached(
    registry: Registry, layout: Path, tmp_path: Path
) -> None:
    cache = BlobCache(tmp_path / "oci")
    ref = parse_reference(f"{registry.address}/test/multi:list")
    async with RegistryClient(cache) as client:
        resolved = await client.resolve(ref)
        # (skopeo compresses the plain tar layer on push; plain layers are covered by
        # tests/host/test_flatten.py.)
        assert [layer.compression for layer in resolved.manifest.layers][:2] == ["gzip", "zstd"]
        for layer in resolved.manifest.layers:
            path = await client.fetch_blob(ref, layer)
            assert path.stat().st_size == layer.size
        first = client.downloaded_bytes
    assert first == resolved.manifest.total_size
    # A second pull of the same layers (here through another tag) downloads nothing.
    other = parse_reference(f"{registry.address}/test/multi:single")
    async with RegistryClient(cache) as client:
        again = await client.resolve(other)
        assert again.digest == resolved.digest
        for layer in again.manifest.layers:
            await client.fetch_blob(other, layer)
        assert client.downloaded_bytes == 0


async def test_interrupted_download_resumes(registry: Registry, layout: Path,
                                            tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "oci")
    ref = parse_reference(f"{registry.address}/test/multi:single")
    async with RegistryClient(cache) as client:
        layer = max((await client.resolve(ref)).manifest.layers, key=lambda d: d.size)
        full = (layout / "blobs/sha256" / layer.digest.removeprefix("sha256:")).read_bytes()
        partial = cache.path(layer.digest).with_name(cache.path(layer.digest).name + ".partial")
        partial.parent.mkdir(parents=True)
        partial.write_bytes(full[: len(full) // 2])
        path = await client.fetch_blob(ref, layer)
        assert path.read_bytes() == full
        assert client.downloaded_bytes == len(full) - len(full) // 2
        assert not partial.exists()


async def test_corrupt_partial_is_detected_and_dropped(registry: Registry, layout: Path,
                                                       tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "oci")
    ref = parse_reference(f"{registry.address}/test/multi:single")
    async with RegistryClient(cache) as client:
        layer = (await client.resolve(ref)).manifest.layers[0]
        partial = cache.path(layer.digest).with_name(cache.path(layer.digest).name + ".partial")
        partial.parent.mkdir(parents=True)
        partial.write_bytes(b"garbage" * 10)
        with pytest.raises(ChecksumMismatch):
            await client.fetch_blob(ref, layer)
        assert not partial.exists() and not cache.path(layer.digest).exists()
        # The next attempt starts over and succeeds.
        await client.fetch_blob(ref, layer)


async def test_missing_image_is_a_clear_error(registry: Registry, tmp_path: Path) -> None:
    async with RegistryClient(BlobCache(tmp_path)) as client:
        with pytest.raises(RegistryError, match="not found"):
            await client.resolve(parse_reference(f"{registry.address}/test/nothing:here"))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("umoci") is None,
                    reason="needs root (ownership) and umoci (the oracle)")
async def test_pull_matches_umoci_and_writes_a_bootable_layout(
    registry: Registry, layout: Path, tmp_path: Path
) -> None:
    events: list[ProgressEvent] = []
    perl_kits = FakePerlKits()
    puller = OCIPuller(tmp_path / "cache", perl_kits=perl_kits)
    pulled = await puller.pull(
        reference=parse_reference(f"{registry.address}/test/multi:list"),
        dest_dir=tmp_path / "images/multi", max_bytes=1 << 30, progress=events.append,
    )
    assert pulled.layers == 3 and pulled.kernel is None and not pulled.has_sshd
    assert any(e.stage == "pull" and "layer 3/3" in e.message for e in events)
    oracle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:oracle", str(oracle)], check=True,
                   capture_output=True)
    theirs = tree_listing(oracle / "rootfs")
    # Mounted read-only (debugfs rdump would drop setuid bits on the way out).
    ours = tmp_path / "ours"
    ours.mkdir()
    subprocess.run(["mount", "-o", "ro,loop", str(pulled.rootfs), str(ours)], check=True)
    try:
        mine = tree_listing(ours)
        su, su2 = os.lstat(ours / "usr/bin/su"), os.lstat(ours / "usr/bin/su2")
        assert su.st_ino == su2.st_ino  # the hard link survived mkfs
    finally:
        subprocess.run(["umount", str(ours)], check=True)
    for path, entry in theirs.items():
        assert mine.get(path) == entry, path
    # What banger added: the boot contract, and sshd's installer (the image has no sshd).
    added = set(mine) - set(theirs)
    assert "usr/local/lib/banger/banger-boot" in added
    assert "etc/systemd/system/banger-install-ssh.service" in added
    # The image has no perl: banger-agent gets banger's, read on the host before the chroot.
    assert perl_kits.kit_requests == 1
    assert perlkit.PERL_PATH.lstrip("/") in added
    assert all(not p.startswith(("home", "opq", "var")) for p in added)


@pytest.mark.skipif(os.geteuid() != 0, reason="the chrooted customisation needs root")
async def test_malicious_image_is_refused_and_leaves_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    root = tmp_path / "layout"
    image = Layout(root)
    image.tag("bad", image.image([layer_tar([Entry("etc", "dir"),
                                              Entry("../../escape", data=b"x")])]))
    registry.push(root, "bad", "test/bad:1")
    with pytest.raises(UnsafeLayer):
        await OCIPuller(tmp_path / "cache").pull(
            reference=parse_reference(f"{registry.address}/test/bad:1"),
            dest_dir=tmp_path / "images/bad", max_bytes=1 << 30, progress=lambda e: None,
        )
    assert not (tmp_path / "images/bad").exists()
    assert not [p for p in (tmp_path / "images").iterdir()] if (tmp_path / "images").exists() \
        else True


@pytest.mark.skipif(os.geteuid() != 0, reason="the chrooted customisation needs root")
async def test_symlinked_etc_cannot_make_customisation_write_on_the_host(
    registry: Registry, tmp_path: Path
) -> None:
    victim = tmp_path / "victim-etc"
    victim.mkdir()
    root = tmp_path / "layout"
    image = Layout(root)
    image.tag("evil", image.image([layer_tar([Entry("etc", "symlink", link=str(victim))])]))
    registry.push(root, "evil", "test/evil:1")
    # Inside the chroot the link dangles: the image is refused, the host untouched.
    with pytest.raises(ImageBuildFailed, match="boot contract"):
        await OCIPuller(tmp_path / "cache").pull(
            reference=parse_reference(f"{registry.address}/test/evil:1"),
            dest_dir=tmp_path / "images/evil", max_bytes=1 << 30, progress=lambda e: None,
        )
    assert list(victim.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the chrooted customisation needs root")
@pytest.mark.timeout(120)
async def test_a_fifo_fstab_fails_the_pull_instead_of_hanging_it(
    registry: Registry, tmp_path: Path
) -> None:
    root = tmp_path / "layout"
    image = Layout(root)
    image.tag("fifo", image.image([layer_tar([Entry("etc", "dir", mode=0o755),
                                               Entry("etc/fstab", "fifo", mode=0o644)])]))
    registry.push(root, "fifo", "test/fifo:1")
    with pytest.raises(ImageBuildFailed, match="not a regular file"):
        await OCIPuller(tmp_path / "cache").pull(
            reference=parse_reference(f"{registry.address}/test/fifo:1"),
            dest_dir=tmp_path / "images/fifo", max_bytes=1 << 30, progress=lambda e: None,
        )
    assert not (tmp_path / "images/fifo").exists()


async def test_a_layer_of_long_name_headers_is_refused_early(
    registry: Registry, tmp_path: Path
) -> None:
    # ~1 MB compressed, 64 MiB of GNU long name: read whole, it swelled the daemon.
    size = 64 << 20
    bomb = tarfile.TarInfo("././@LongLink")
    bomb.type, bomb.size = tarfile.GNUTYPE_LONGNAME, size
    layer = bomb.tobuf(format=tarfile.USTAR_FORMAT) + b"a" * size + bytes(1024)
    root = tmp_path / "layout"
    image = Layout(root)
    image.tag("bomb", image.image([(layer, "gzip")]))
    registry.push(root, "bomb", "test/bomb:1")
    with pytest.raises(UnsafeLayer, match="extended tar headers"):
        await OCIPuller(tmp_path / "cache").pull(
            reference=parse_reference(f"{registry.address}/test/bomb:1"),
            dest_dir=tmp_path / "images/bomb", max_bytes=1 << 30, progress=lambda e: None,
        )


HELPER = """#!/bin/sh
# A docker credential helper: `get` reads the server on stdin, prints JSON credentials.
[ "$1" = get ] || exit 1
read -r server
echo "$server" >> "$(dirname "$0")/asked"
[ "$server" = "{address}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}
printf '{{"ServerURL": "%s", "Username": "{user}", "Secret": "{password}"}}\\n' "$server"
"""


async def test_pull_with_a_real_credential_helper_from_path(
    layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_registry(login=("alice", "s3cret")) as private:
        private.push(layout, "multi", "team/app:1")
        ref = parse_reference(f"{private.address}/team/app:1")
        async with RegistryClient(BlobCache(tmp_path / "anon")) as client:
            with pytest.raises(RegistryError, match="requires a login"):
                await client.resolve(ref)

        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        helper = bin_dir / "docker-credential-bangertest"
        helper.write_text(HELPER.format(address=private.address, user="alice",
                                        password="s3cret"))
        helper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        async with RegistryClient(BlobCache(tmp_path / "c"),
                                  credentials={"credsStore": "bangertest"}) as client:
            resolved = await client.resolve(ref)
            blob = await client.fetch_blob(ref, resolved.manifest.layers[0])
        assert blob.stat().st_size == resolved.manifest.layers[0].size
        assert (bin_dir / "asked").read_text() == f"{private.address}\n"

        helper.write_text("#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n")
        async with RegistryClient(BlobCache(tmp_path / "d"),
                                  credentials={"credsStore": "bangertest"}) as client:
            with pytest.raises(RegistryError, match=r"bangertest failed.*keychain locked"):
                await client.resolve(ref)
