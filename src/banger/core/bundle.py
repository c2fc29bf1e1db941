"""Image bundles (`image export` / `image import`): the manifest and the rules a bundle must
follow. A bundle is a zstd-compressed tar whose members are the image's files under fixed
names, followed by `manifest.json` holding the image's metadata and each member's size and
sha256 (last, so export is one streaming pass over the files)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from banger.core.errors import BadBundle
from banger.core.models import Image

FORMAT = "banger-image-bundle"
VERSION = 1
MANIFEST = "manifest.json"
# Image field -> member name inside the bundle (and file name in the image store).
MEMBERS: dict[str, str] = {"rootfs": "rootfs.ext4", "kernel": "vmlinuz", "initrd": "initrd.img"}
_LATEST_TIME = 2**34  # year 2514: a later time is crafted, and no datetime could show it
# Metadata carried over as it was; paths, name and `managed` are the importer's own.
_CARRIED = ("source", "created_at", "size_bytes", "recipe_version", "kernel_name",
            "ssh_on_first_boot", "digest")


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    image: dict[str, Any]  # the exported image's record, minus host paths
    members: list[Member] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps({
            "format": FORMAT, "version": VERSION, "image": self.image,
            "members": [{"name": m.name, "size": m.size, "sha256": m.sha256}
                        for m in self.members],
        }, indent=2, sort_keys=True).encode() + b"\n"

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)


def member_files(image: Image) -> dict[str, str]:
    """Bundle member name -> the image's file on this host, for the files the image has."""
    files = {MEMBERS[key]: getattr(image, key) for key in MEMBERS if getattr(image, key)}
    if "rootfs.ext4" not in files:
        raise BadBundle(f"image {image.name!r} has no root filesystem to export")
    return files


def image_metadata(image: Image) -> dict[str, Any]:
    data: dict[str, Any] = {"name": image.name}
    for key in _CARRIED:
        data[key] = getattr(image, key)
    return data


def parse_manifest(raw: bytes) -> Manifest:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBundle(f"the bundle's manifest is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadBundle("not a banger image bundle (no banger manifest)")
    if data.get("version") != VERSION:
        raise BadBundle(
            f"bundle format version {data.get('version')!r} is not supported (this banger "
            f"reads version {VERSION})", hint="import it with the banger that exported it",
        )
    image, members = data.get("image"), data.get("members")
    if not isinstance(image, dict) or not isinstance(members, list):
        raise BadBundle("the bundle's manifest lacks its image or members")
    parsed: list[Member] = []
    for item in members:
        try:
            member = Member(str(item["name"]), int(item["size"]), str(item["sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadBundle(f"the bundle's manifest has a malformed member: {item!r}") from exc
        if member.name not in MEMBERS.values():
            raise BadBundle(f"the bundle's manifest names an unknown member {member.name!r}")
        parsed.append(member)
    if not any(m.name == MEMBERS["rootfs"] for m in parsed):
        raise BadBundle("the bundle has no root filesystem")
    return Manifest(image, parsed)


def check_member_name(name: str) -> None:
    """Only our fixed flat names: nothing may land outside the staging dir."""
    if name != MANIFEST and name not in MEMBERS.values():
        raise BadBundle(f"the bundle holds an unexpected member {name!r}")


def verify(manifest: Manifest, found: dict[str, Member]) -> None:
    """Every manifest member arrived whole, with its checksum, and nothing else did."""
    for expected in manifest.members:
        got = found.get(expected.name)
        if got is None:
            raise BadBundle(f"the bundle is missing {expected.name}")
        if got.size != expected.size:
            raise BadBundle(
                f"{expected.name} in the bundle is {got.size} bytes, the manifest says "
                f"{expected.size} (truncated?)"
            )
        if got.sha256 != expected.sha256:
            raise BadBundle(f"{expected.name} in the bundle fails its sha256 check (corrupt)")
    extra = sorted(set(found) - {m.name for m in manifest.members})
    if extra:
        raise BadBundle(f"the bundle holds members its manifest does not list: {extra}")


def imported_image(
    manifest: Manifest, name: str, paths: dict[str, str], size_bytes: int, source_file: str
) -> Image:
    """The store record for an imported bundle; `paths` maps image field -> local file."""
    meta = manifest.image

    def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = meta.get(key, default)
        return value if isinstance(value, kind) else default

    origin = get("source", str, "")
    created_at = float(get("created_at", (int, float), 0.0))
    if not (math.isfinite(created_at) and 0 <= created_at < _LATEST_TIME):
        raise BadBundle(f"the bundle's manifest has an impossible created_at ({created_at!r})")
    return Image(
        name=name,
        rootfs=paths["rootfs"],
        kernel=paths.get("kernel", ""),
        initrd=paths.get("initrd"),
        managed=True,
        created_at=created_at,
        source=f"import: {source_file}" + (f" ({origin})" if origin else ""),
        size_bytes=size_bytes,
        recipe_version=get("recipe_version", str, ""),
        kernel_name=get("kernel_name", str, ""),
        ssh_on_first_boot=bool(get("ssh_on_first_boot", bool, False)),
        digest=get("digest", str, ""),
    )
