"""Kernel pull against a crafted archive: InRelease with unsigned text around its
signature, a missing gpgv or keyring, and a .deb whose data.tar is a bomb
(Containment: hostile kernels and registries)."""

from __future__ import annotations

import io
import lzma
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from banger.core.errors import (
    ChecksumMismatch,
    DiskFull,
    ImageBuildFailed,
    ImageTooLarge,
    MissingTool,
)
from banger.core.kernelcatalog import KERNEL_CATALOG, DebFile, release_sha256
from banger.host import kernelpull
from banger.host.kernelpull import _unpack, verified_release

GOOD = "a" * 64
EVIL = "e" * 64
RELEASE = f"Origin: Debian\nSuite: test\nSHA256:\n {GOOD} 100 main/binary-amd64/Packages.xz\n"

needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("gpgv") is None,
                               reason="gpg and gpgv are needed to sign a test InRelease")


class Signer:
    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(mode=0o700)
        self._gpg("--quick-generate-key", "--passphrase", "", "banger test <t@example.invalid>",
                  "ed25519", "sign", "never")
        self.keyring = home / "keyring.gpg"
        self.keyring.write_bytes(self._gpg("--export"))

    def _gpg(self, *args: str, data: bytes | None = None) -> bytes:
        return subprocess.run(
            ["gpg", "--batch", "--quiet", "--homedir", str(self.home), "--pinentry-mode",
             "loopback", *args], input=data, capture_output=True, check=True,
        ).stdout

    def clearsign(self, text: str) -> str:
        return self._gpg("--clearsign", data=text.encode()).decode()

    def close(self) -> None:
        """gpg leaves a gpg-agent running for its home directory: stop it."""
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                       capture_output=True, check=False)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    made = Signer(tmp_path_factory.mktemp("gpg") / "home")
    try:
        yield made
    finally:
        made.close()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "InRelease"
    path.write_text(text)
    return path


@needs_gpg
def test_only_the_signed_release_text_is_returned(tmp_path: Path, signer: Signer) -> None:
    release = verified_release(write(tmp_path, signer.clearsign(RELEASE)), signer.keyring)
    assert release_sha256(release)["main/binary-amd64/Packages.xz"][0] == GOOD


@needs_gpg
def test_unsigned_sha256_appended_after_the_signature_is_refused(
    tmp_path: Path, signer: Signer
) -> None:
    # The reported bypass: gpgv accepts the file, and a parser of the whole text took the
    # appended (later) SHA256 line for the Packages index, swapping the kernel .deb.
    tampered = signer.clearsign(RELEASE) + (
        f"SHA256:\n {EVIL} 100 main/binary-amd64/Packages.xz\n"
    )
    with pytest.raises(ChecksumMismatch, match="outside the signature"):
        verified_release(write(tmp_path, tampered), signer.keyring)


@needs_gpg
def test_unsigned_text_before_the_signed_message_is_refused(
    tmp_path: Path, signer: Signer
) -> None:
    tampered = f"SHA256:\n {EVIL} 100 main/binary-amd64/Packages.xz\n\n" + signer.clearsign(
        RELEASE)
    with pytest.raises(ChecksumMismatch, match="outside the signature"):
        verified_release(write(tmp_path, tampered), signer.keyring)


@needs_gpg
def test_a_changed_signed_text_does_not_verify(tmp_path: Path, signer: Signer) -> None:
    tampered = signer.clearsign(RELEASE).replace(GOOD, EVIL)
    with pytest.raises(ChecksumMismatch, match="does not verify"):
        verified_release(write(tmp_path, tampered), signer.keyring)


@needs_gpg
def test_a_second_sha256_section_inside_the_signature_is_refused(
    tmp_path: Path, signer: Signer
) -> None:
    doubled = RELEASE + f"SHA256:\n {EVIL} 100 main/binary-amd64/Packages.xz\n"
    with pytest.raises(ChecksumMismatch, match="two SHA256 sections"):
        release_sha256(verified_release(write(tmp_path, signer.clearsign(doubled)),
                                        signer.keyring))


def test_a_missing_keyring_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(MissingTool, match="keyring"):
        verified_release(write(tmp_path, RELEASE), tmp_path / "no-keyring.gpg")


def test_a_missing_gpgv_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes(b"")
    monkeypatch.setattr(kernelpull.shutil, "which", lambda name: None)
    with pytest.raises(MissingTool, match="gpgv"):
        verified_release(write(tmp_path, RELEASE), keyring)


def deb(path: Path, data_tar: bytes) -> Path:
    """An ar archive with a debian-binary and a data.tar.xz member."""
    def member(name: str, body: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n".encode()
        return header + body + (b"\n" if len(body) % 2 else b"")

    path.write_bytes(b"!<arch>\n" + member("debian-binary", b"2.0\n")
                     + member("data.tar.xz", lzma.compress(data_tar)))
    return path


def tar_of(name: str, body: bytes, *more: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        for extra in more:
            tar.addfile(extra)
    return buffer.getvalue()


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def test_a_package_symlink_to_a_host_file_is_not_used(tmp_path: Path) -> None:
    # busybox goes into the guest's initrd: a bin/busybox -> /etc/shadow must not.
    version = "6.1.0-1-cloud-amd64"
    modules_dir = tarfile.TarInfo(f"./lib/modules/{version}")
    modules_dir.type = tarfile.DIRTYPE
    kernel_deb = deb(tmp_path / "k.deb", tar_of(f"./boot/vmlinuz-{version}", b"k", modules_dir))
    busybox_deb = deb(tmp_path / "b.deb",
                      tar_of("./usr/share/doc/x", b"", symlink("./bin/busybox", "/etc/shadow")))
    package = DebFile(f"linux-image-{version}", "1", "k.deb", "0" * 64, 1)
    (tmp_path / "work").mkdir()
    with pytest.raises(ImageBuildFailed, match="no bin/busybox"):
        kernelpull._assemble(package, kernel_deb, busybox_deb, tmp_path / "work",
                             tmp_path / "dest")


def test_a_deb_is_unpacked_as_a_stream(tmp_path: Path) -> None:
    package = deb(tmp_path / "ok.deb", tar_of("./boot/vmlinuz-1", b"kernel"))
    _unpack(package, tmp_path / "out")
    assert (tmp_path / "out/boot/vmlinuz-1").read_bytes() == b"kernel"


def test_a_deb_data_bomb_stops_at_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernelpull, "_MAX_DEB_TREE", 1 << 20)
    package = deb(tmp_path / "bomb.deb", tar_of("zeros", bytes(32 << 20)))
    assert os.path.getsize(package) < 1 << 20
    with pytest.raises(ImageTooLarge):
        _unpack(package, tmp_path / "out")


KERNEL_DEB = DebFile("linux-image-6.1.0-1-cloud-amd64", "1", "pool/k.deb", "0" * 64,
                     30 << 20, 120 << 20)
BUSYBOX_DEB = DebFile("busybox-static", "1", "pool/b.deb", "0" * 64, 1 << 20, 2 << 20)


def _fetcher_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free: int, downloads: list[str]
) -> kernelpull.DebianKernelFetcher:
    fetcher = kernelpull.DebianKernelFetcher(tmp_path / "cache", free_bytes=lambda _: free)

    async def index(*_: object) -> dict[str, dict[str, str]]:
        return {}

    async def deb(_session: object, _archive: str, deb: DebFile, _progress: object) -> Path:
        downloads.append(deb.package)
        raise ImageBuildFailed("stop here: the room check passed")

    monkeypatch.setattr(fetcher, "_index", index)
    monkeypatch.setattr(fetcher, "_deb", deb)
    monkeypatch.setattr(kernelpull, "kernel_package", lambda *_: KERNEL_DEB)
    monkeypatch.setattr(kernelpull, "deb_file", lambda *_: BUSYBOX_DEB)
    return fetcher


async def test_a_kernel_pull_on_a_full_disk_downloads_nothing_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[str] = []
    fetcher = _fetcher_without_network(tmp_path, monkeypatch, 100 << 20, downloads)
    store = tmp_path / "kernels"
    with pytest.raises(DiskFull) as caught:
        await fetcher.fetch(entry=KERNEL_CATALOG["generic-6.1"], archive="http://archive.invalid",
                            dest_dir=store / "generic-6.1", progress=lambda _: None)
    assert caught.value.code == "disk_full"
    assert "pulling this kernel" in caught.value.message
    assert downloads == []
    assert list(store.iterdir()) == []


async def test_a_kernel_pull_with_room_goes_on_to_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[str] = []
    # 31 MiB of .debs and 242 MiB unpacked (the kernel's tree twice, busybox once).
    fetcher = _fetcher_without_network(tmp_path, monkeypatch, 273 << 20, downloads)
    with pytest.raises(ImageBuildFailed, match="room check passed"):
        await fetcher.fetch(entry=KERNEL_CATALOG["generic-6.1"], archive="http://archive.invalid",
                            dest_dir=tmp_path / "kernels" / "generic-6.1",
                            progress=lambda _: None)
    assert downloads == [KERNEL_DEB.package]


async def test_cached_debs_need_no_room_for_their_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[str] = []
    fetcher = _fetcher_without_network(tmp_path, monkeypatch, 242 << 20, downloads)
    debs = tmp_path / "cache" / "debs"
    debs.mkdir(parents=True)
    (debs / "k.deb").write_bytes(b"")
    (debs / "b.deb").write_bytes(b"")
    with pytest.raises(ImageBuildFailed, match="room check passed"):
        await fetcher.fetch(entry=KERNEL_CATALOG["generic-6.1"], archive="http://archive.invalid",
                            dest_dir=tmp_path / "kernels" / "generic-6.1",
                            progress=lambda _: None)
    assert downloads == [KERNEL_DEB.package]
