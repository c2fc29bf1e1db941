"""Test helpers for OCI: build image layouts from tar entries or from a loop-mounted rootfs,
push them with skopeo to a local `docker-registry` (Debian's package) that the test starts
on 127.0.0.1 and stops by PID. Shared by tests/host, tests/e2e and bench/oci_pull.py."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_TOOLS = ("docker-registry", "skopeo")


def missing_tools(tools: Sequence[str] = REGISTRY_TOOLS) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


@dataclass
class Entry:
    """One tar member of a test layer."""

    name: str
    kind: str = "file"  # file | dir | symlink | hardlink | chr | fifo
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""
    mtime: int = 1_700_000_000
    xattrs: dict[str, str] = field(default_factory=dict)


def layer_tar(entries: Sequence[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mode, info.uid, info.gid, info.mtime = (
                entry.mode, entry.uid, entry.gid, entry.mtime
            )
            info.type = {
                "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE,
            }[entry.kind]
            info.linkname = entry.link
            if entry.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in entry.xattrs.items()}
            if entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True,
                              check=True).stdout
    return data


_LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "": "application/vnd.oci.image.layer.v1.tar",
}


class Layout:
    """An OCI image layout directory, written blob by blob."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs/sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.index: list[dict[str, object]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs/sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def blob_file(self, path: Path, media_type: str) -> dict[str, object]:
        hasher = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
        digest = hasher.hexdigest()
        target = self.root / "blobs/sha256" / digest
        shutil.move(path, target)
        return {"mediaType": media_type, "digest": f"sha256:{digest}",
                "size": target.stat().st_size}

    def image(
        self, layers: Sequence[bytes | tuple[bytes, str] | dict[str, object]],
        arch: str = "amd64", diff_ids: Sequence[str] = (),
    ) -> dict[str, object]:
        """Write an image manifest of `layers` (plain tars, (tar, compression) pairs, or
        descriptors of blobs already written); return its descriptor."""
        descriptors: list[dict[str, object]] = []
        ids = list(diff_ids)
        for layer in layers:
            if isinstance(layer, dict):
                descriptors.append(layer)
                continue
            data, compression = layer if isinstance(layer, tuple) else (layer, "gzip")
            ids.append("sha256:" + hashlib.sha256(data).hexdigest())
            descriptors.append(self.blob(compress(data, compression), _LAYER_TYPES[compression]))
        config = json.dumps({
            "architecture": arch, "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": ids},
        }).encode()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": self.blob(config, "application/vnd.oci.image.config.v1+json"),
            "layers": descriptors,
        }).encode()
        descriptor = self.blob(manifest, "application/vnd.oci.image.manifest.v1+json")
        descriptor["platform"] = {"os": "linux", "architecture": arch}
        return descriptor

    def tag(self, tag: str, descriptor: dict[str, object]) -> None:
        entry = dict(descriptor)
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index.append(entry)
        self._write_index()

    def tag_index(self, tag: str, manifests: Sequence[dict[str, object]]) -> None:
        index = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": list(manifests),
        }).encode()
        self.tag(tag, self.blob(index, "application/vnd.oci.image.index.v1+json"))

    def _write_index(self) -> None:
        (self.root / "index.json").write_text(json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": self.index,
        }))


# banger reads no diff_ids, so a rootfs layer is not hashed uncompressed just to fill one in.
UNCHECKED_DIFF_ID = "sha256:" + "0" * 64


@contextlib.contextmanager
def loop_mount(image: Path, *, read_only: bool = True) -> Iterator[Path]:
    """`image` (a filesystem image) loop-mounted on a temporary directory; needs root."""
    mount = Path(tempfile.mkdtemp(prefix="bgm-"))
    try:
        subprocess.run(["mount", "-o", "ro,loop" if read_only else "loop", str(image),
                        str(mount)], check=True)
        try:
            yield mount
        finally:
            subprocess.run(["umount", str(mount)], check=False)
    finally:
        mount.rmdir()


def rootfs_layer(layout: Layout, mount: Path, staging: Path) -> dict[str, object]:
    """The tree at `mount` (a mounted rootfs, without /boot and lost+found) as a zstd layer
    blob of `layout`, compressed through `staging`; returns its descriptor. Its diff_id is
    UNCHECKED_DIFF_ID."""
    base = staging / "rootfs.tar.zst"
    # Leaving the Popen closes our end of the pipe before waiting, so a failed zstd
    # cannot leave tar blocked on a full pipe.
    with subprocess.Popen(
        ["tar", "-C", str(mount), "--numeric-owner", "--xattrs", "--exclude=./boot",
         "--exclude=./lost+found", "-cf", "-", "."], stdout=subprocess.PIPE,
    ) as tar, open(base, "wb") as out:
        subprocess.run(["zstd", "-q", "-T0", "-3", "-c"], stdin=tar.stdout, stdout=out,
                       check=True)
    assert tar.returncode == 0
    return layout.blob_file(base, _LAYER_TYPES["zstd"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Registry:
    address: str  # 127.0.0.1:PORT
    wrap: Callable[[list[str]], list[str]]
    login: tuple[str, str] | None = None  # htpasswd user and password, when auth is on

    def push(self, layout: Path, tag: str, repo: str, *, all_images: bool = False) -> str:
        argv = ["skopeo", "copy", "-q", "--dest-tls-verify=false"]
        if self.login:
            argv.append(f"--dest-creds={self.login[0]}:{self.login[1]}")
        if all_images:
            argv.append("--all")
        argv += [f"oci:{layout}:{tag}", f"docker://{self.address}/{repo}"]
        subprocess.run(self.wrap(argv), check=True, capture_output=True)
        return f"{self.address}/{repo}"


def bcrypt_hash(password: str) -> str:
    """The only hash docker-registry's htpasswd accepts; libxcrypt's crypt(3) makes it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated, still in 3.11/3.12; fine for a test helper

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


@contextlib.contextmanager
def local_registry(
    wrap: Callable[[list[str]], list[str]] = lambda argv: argv, port: int | None = None,
    login: tuple[str, str] | None = None,
) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1 with its own config and storage (inside a network
    namespace when `wrap` prefixes `ip netns exec`), stopped by PID at the end. `login`
    turns on its htpasswd (HTTP basic) auth for that user."""
    root = Path(tempfile.mkdtemp(prefix="bgreg-"))
    port = port or free_port()
    config = root / "config.yml"
    auth = ""
    if login:
        (root / "htpasswd").write_text(f"{login[0]}:{bcrypt_hash(login[1])}\n")
        auth = f"auth:\n  htpasswd:\n    realm: banger-test\n    path: {root / 'htpasswd'}\n"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth
    )
    log = open(root / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(wrap(["docker-registry", "serve", str(config)]),
                            stdout=log, stderr=log)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            # Any HTTP answer (401 too, with auth on) means it is up.
            probe = subprocess.run(
                wrap(["python3", "-c", "import urllib.request, urllib.error\ntry:\n"
                      f" urllib.request.urlopen('http://{address}/v2/', timeout=1)\n"
                      "except urllib.error.HTTPError:\n pass"]),
                capture_output=True, check=False,
            ) if wrap([]) else None
            if probe is None:
                try:
                    urllib.request.urlopen(f"http://{address}/v2/", timeout=1).read()
                    break
                except urllib.error.HTTPError:
                    break
                except OSError:
                    pass
            elif probe.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"docker-registry did not start: {(root / 'registry.log').read_text()}"
                )
            time.sleep(0.1)
        yield Registry(address, wrap, login)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
