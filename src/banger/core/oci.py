"""OCI images, sans I/O: references, manifests and indexes, registry auth challenges, and the
rules for applying a layer's tar entries to a root filesystem (whiteouts, opaque directories,
path safety). The registry client (host/oci.py) and the layer flattener (host/flatten.py) do
the I/O and ask these functions what to do.

References follow Docker's normalisation: ``debian`` is ``docker.io/library/debian:latest``;
the first component is a registry only if it has a ``.`` or ``:`` or is ``localhost``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from banger.core.errors import InvalidInput, RegistryError, UnsafeLayer

DEFAULT_REGISTRY = "docker.io"
# Docker Hub's references say docker.io; its distribution API answers on another host.
_DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
# The key `docker login` writes for Docker Hub in ~/.docker/config.json.
_DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))

# Layer media type -> compression ("" for a plain tar).
LAYER_TYPES: dict[str, str] = {
    "application/vnd.oci.image.layer.v1.tar": "",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
}

PLATFORM = ("linux", "amd64")

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """A reference like ``debian``, ``debian:bookworm``, ``ghcr.io/o/r@sha256:...`` or
    ``127.0.0.1:5000/test/img:1``."""
    raw = text.strip()
    if not raw or any(c.isspace() for c in raw):
        raise InvalidInput(f"invalid image reference {text!r}")
    name, _, digest = raw.partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidInput(
            f"invalid digest in {text!r}", hint="digests look like sha256:<64 hex digits>"
        )
    tag: str | None = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidInput(f"invalid tag {tag!r} in {text!r}")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
        if not _HOST.match(registry):
            raise InvalidInput(f"invalid registry {registry!r} in {text!r}")
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if registry in _DOCKER_HUB_ALIASES:
        registry = DEFAULT_REGISTRY
        if "/" not in repository:
            repository = f"library/{repository}"
    if not _REPOSITORY.match(repository):
        raise InvalidInput(
            f"invalid repository {repository!r} in {text!r}",
            hint="repository names are lower-case, e.g. docker.io/library/debian:bookworm",
        )
    if tag is None and not digest:
        tag = "latest"
    return Reference(registry, repository, tag, digest or None)


def api_host(registry: str) -> str:
    return _DOCKER_HUB_API if registry == DEFAULT_REGISTRY else registry


def is_loopback(registry: str) -> bool:
    """Whether ``host[:port]`` names this machine: localhost or a loopback address (a name
    such as ``127.0.0.1.example.com`` is not one)."""
    bracketed = registry.startswith("[")
    host = registry[1:].split("]", 1)[0] if bracketed else registry.rsplit(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def image_name_for(ref: Reference) -> str:
    """A default banger image name (a DNS label) for a reference: ``debian-bookworm``."""
    base = ref.repository.rsplit("/", 1)[-1]
    suffix = ref.tag if ref.tag and ref.tag != "latest" else ""
    if not suffix and ref.digest:
        suffix = ref.digest.removeprefix("sha256:")[:12]
    text = f"{base}-{suffix}" if suffix else base
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return label[:63].rstrip("-") or "image"


def check_digest(digest: str) -> str:
    """The hex part of a sha256 digest; anything else is refused (it names a cache file)."""
    if not _DIGEST.match(digest):
        raise RegistryError(f"unsupported or malformed digest {digest!r}")
    return digest.removeprefix("sha256:")


# -- manifests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    @property
    def compression(self) -> str:
        return LAYER_TYPES.get(self.media_type, "")


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def total_size(self) -> int:
        return sum(layer.size for layer in self.layers)


def _descriptor(data: Any, what: str) -> Descriptor:
    if not isinstance(data, dict):
        raise RegistryError(f"malformed {what} descriptor")
    digest, size = data.get("digest"), data.get("size")
    media_type = data.get("mediaType", "")
    if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
        raise RegistryError(f"malformed {what} descriptor: {data!r}"[:200])
    check_digest(digest)
    return Descriptor(str(media_type), digest, size)


def media_type_of(body: Mapping[str, Any], header: str = "") -> str:
    """The manifest's media type: its own field, else the Content-Type the registry sent."""
    declared = body.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in body:
        return OCI_INDEX
    return header.split(";")[0].strip() or OCI_MANIFEST


def is_index(body: Mapping[str, Any], header: str = "") -> bool:
    return media_type_of(body, header) in INDEX_TYPES


def select_platform(
    index: Mapping[str, Any], platform: tuple[str, str] = PLATFORM
) -> Descriptor:
    """The manifest for `platform` (os, architecture) in an index / manifest list."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise RegistryError("malformed image index: no manifests")
    seen: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        plat = entry.get("platform") or {}
        found = (plat.get("os"), plat.get("architecture"))
        if found == platform:
            return _descriptor(entry, "manifest")
        if found != ("unknown", "unknown"):  # attestation manifests are not images
            seen.append(f"{found[0]}/{found[1]}")
    raise RegistryError(
        f"the image has no {platform[0]}/{platform[1]} variant",
        hint=f"available: {', '.join(seen) or 'none'}",
    )


def parse_manifest(body: Mapping[str, Any]) -> Manifest:
    if body.get("schemaVersion") != 2:
        raise RegistryError(
            "unsupported manifest (schema version 1)",
            hint="push the image again with a current tool (docker, buildah, skopeo)",
        )
    layers = body.get("layers")
    if not isinstance(layers, list):
        raise RegistryError("malformed manifest: no layers")
    parsed = tuple(_descriptor(layer, "layer") for layer in layers)
    for layer in parsed:
        if layer.media_type and layer.media_type not in LAYER_TYPES:
            raise RegistryError(f"unsupported layer media type {layer.media_type!r}")
    return Manifest(_descriptor(body.get("config"), "config"), parsed)


# -- auth -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer" or "basic"
    params: dict[str, str]


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenge(header: str) -> Challenge:
    """A ``WWW-Authenticate`` value: ``Bearer realm="...",service="...",scope="..."``."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        value = quoted.replace('\\"', '"') if quoted is not None else bare
        params[match.group(1).lower()] = value or ""
    return Challenge(scheme.lower(), params)


def token_query(challenge: Challenge, repository: str) -> tuple[str, dict[str, str]]:
    """The token endpoint and its query for pulling `repository`."""
    realm = challenge.params.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise RegistryError(f"the registry's auth realm {realm!r} is not an http(s) URL")
    query = {"scope": challenge.params.get("scope") or f"repository:{repository}:pull"}
    if challenge.params.get("service"):
        query["service"] = challenge.params["service"]
    return realm, query


def may_send_credentials(realm: str, insecure: Collection[str] = ()) -> bool:
    """Whether the user's registry password may go to this token realm: over https, or
    over plain http only to a host banger would speak http to anyway (loopback, or listed
    as insecure). A registry must not be able to point the login at a cleartext URL."""
    scheme, _, rest = realm.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1].lower()
    if scheme.lower() == "https":
        return True
    return scheme.lower() == "http" and (is_loopback(host) or host in insecure)


def docker_credentials(config: Mapping[str, Any], registry: str) -> tuple[str, str] | None:
    """User and password for `registry` from a parsed ~/.docker/config.json ("auths" with
    base64 "user:password"; credential helpers: see credential_helper)."""
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    wanted = {registry}
    if registry == DEFAULT_REGISTRY:
        wanted |= {*_DOCKER_HUB_ALIASES, _DOCKER_HUB_AUTH_KEY}
    for key, entry in auths.items():
        host = re.sub(r"^https?://", "", str(key)).split("/", 1)[0]
        if (key in wanted or host in wanted) and isinstance(entry, dict):
            encoded = entry.get("auth")
            if isinstance(encoded, str) and encoded:
                try:
                    user, sep, password = base64.b64decode(encoded).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    continue
                if sep:
                    return user, password
            username, secret = entry.get("username"), entry.get("password")
            if isinstance(username, str) and isinstance(secret, str):
                return username, secret
    return None


# A helper's answer when it has nothing for the server (docker-credential-helpers' wording).
HELPER_NOT_FOUND = "credentials not found in native keychain"
_HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def credential_helper(config: Mapping[str, Any], registry: str) -> tuple[str, str] | None:
    """(helper, server URL) when ~/.docker/config.json hands `registry` to a credential
    helper: its "credHelpers" entry for the registry first, else "credsStore". The helper
    is the program `docker-credential-<helper>`; the server URL is what to ask it for."""
    wanted = {registry}
    server = registry
    if registry == DEFAULT_REGISTRY:
        wanted |= {*_DOCKER_HUB_ALIASES, _DOCKER_HUB_AUTH_KEY}
        server = _DOCKER_HUB_AUTH_KEY  # where `docker login` stores Docker Hub's entry
    helper: object = None
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        helper = next((v for k, v in helpers.items()
                       if k in wanted or re.sub(r"^https?://", "", str(k)).split("/", 1)[0]
                       in wanted), None)
    if helper is None:
        helper = config.get("credsStore")
    if not isinstance(helper, str) or not helper:
        return None
    if not _HELPER_NAME.match(helper):
        raise RegistryError(
            f"credential helper name {helper!r} in ~/.docker/config.json is not valid",
            hint="it names a program docker-credential-<name>; fix credsStore/credHelpers",
        )
    return helper, server


def parse_helper_output(helper: str, stdout: str) -> tuple[str, str]:
    """`docker-credential-<helper> get` prints {"ServerURL", "Username", "Secret"}."""
    try:
        data = json.loads(stdout)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("Secret"), str):
        raise RegistryError(
            f"credential helper docker-credential-{helper} printed no credentials",
            hint="check the helper with `echo SERVER | docker-credential-"
            f"{helper} get`",
        )
    username = data.get("Username")
    return (username if isinstance(username, str) else ""), data["Secret"]


# -- layer entries ---------------------------------------------------------------------------

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# Each entry costs at least an inode and a block in the image: charged against the size cap
# so a layer of millions of empty files is refused like one huge file.
ENTRY_COST = 4096
MAX_SYMLINKS = 40
_MAX_NAME = 255  # NAME_MAX: a longer component fails in the kernel as ENAMETOOLONG

Parts = tuple[str, ...]


class EntryKind(enum.Enum):
    NORMAL = "normal"
    WHITEOUT = "whiteout"  # remove `target` (from lower layers)
    OPAQUE = "opaque"  # hide everything lower layers put in directory `target`
    IGNORED = "ignored"  # the root itself, or AUFS bookkeeping (.wh..wh.plnk, ...)


def normalize_path(name: str, *, what: str = "entry") -> Parts:
    """A tar member name as path components relative to the image root. Absolute paths, any
    ``..`` and NUL bytes are refused: no legitimate layer needs them and each is a way out."""
    if "\0" in name:
        raise UnsafeLayer(f"layer {what} {name!r} contains a NUL byte")
    if name.startswith("/"):
        raise UnsafeLayer(f"layer {what} {name!r} is an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeLayer(f"layer {what} {name!r} contains '..'")
    if any(len(p.encode("utf-8", "surrogateescape")) > _MAX_NAME for p in parts):
        raise UnsafeLayer(f"layer {what} {name[:80]!r}... has a name over {_MAX_NAME} bytes")
    return parts


def classify(parts: Parts) -> tuple[EntryKind, Parts]:
    if not parts:
        return EntryKind.IGNORED, parts
    base = parts[-1]
    if base == OPAQUE_MARKER:
        return EntryKind.OPAQUE, parts[:-1]
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return EntryKind.IGNORED, parts
    if base.startswith(WHITEOUT_PREFIX):
        target = base[len(WHITEOUT_PREFIX):]
        if not target:
            raise UnsafeLayer(f"whiteout {'/'.join(parts)!r} names nothing")
        return EntryKind.WHITEOUT, (*parts[:-1], target)
    return EntryKind.NORMAL, parts


def resolve_parents(parts: Parts, readlink: Callable[[Parts], str | None]) -> Parts:
    """Resolve the directories leading to an entry as the guest would see them, with every
    symlink interpreted inside the image root (absolute targets start at the root, ``..``
    stops at it), so the result can never leave the root. The last component is not
    followed: an entry replaces a symlink, it never writes through it.

    ``readlink(parts)`` returns the target of the symlink at `parts` (already resolved), or
    None when that is not a symlink (a directory, or missing: it will be created)."""
    if not parts:
        return parts
    resolved: list[str] = []
    pending = list(parts[:-1])
    followed = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        target = readlink((*resolved, part))
        if target is None:
            resolved.append(part)
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            raise UnsafeLayer(f"too many levels of symlinks under {'/'.join(parts)!r}")
        if target.startswith("/"):
            resolved = []
        pending = target.split("/") + pending
    return (*resolved, parts[-1])


# What ext4 can store (1901-12-13 to 2446-05-10); a layer's mtime outside it is crafted.
_MTIME_RANGE = (-(2**31), 2**34)


def check_mtime(name: str, mtime: float) -> None:
    """Refuse an entry whose timestamp no filesystem can hold (NaN, infinite, or centuries
    off): os.utime would fail on it with an unexplained OverflowError."""
    if not (math.isfinite(mtime) and _MTIME_RANGE[0] <= mtime < _MTIME_RANGE[1]):
        raise UnsafeLayer(f"entry {name!r} has an impossible timestamp ({mtime!r})")


def entry_mode(mode: int) -> int:
    """Permission bits kept from a tar header: all of them, setuid/setgid/sticky included.
    The image is the guest's root filesystem; its sudo or ping need their bits. On the host
    the files only ever exist under a 0700 staging directory and inside the ext4 image."""
    return mode & 0o7777


def keep_xattr(name: str) -> bool:
    """Extended attributes applied from pax headers: user.* and file capabilities. Others
    (security.selinux, trusted.*) describe the build host, not the image."""
    return name.startswith("user.") or name == "security.capability"


def default_size_cap(free_bytes: int) -> int:
    """How much an image may take once extracted when `image_max_size` is not set: the
    tree and its ext4 copy exist at once, so half the free space (keeping 2 GiB for
    everything else), at most 64 GiB and at least 1 GiB."""
    gib = 1024**3
    return max(gib, min(64 * gib, (free_bytes - 2 * gib) // 2))
