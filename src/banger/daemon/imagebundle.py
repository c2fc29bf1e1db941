"""`image export` / `image import`: move an image between machines as one bundle file.

The bundle travels through the API, not through the daemon's filesystem: export answers
with its bytes as they are made, import reads them from the request as they arrive. The
client reads and writes the file itself, on its own machine (which may not be the daemon's
host), with its own permissions."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path

from banger.core.bundle import MEMBERS, image_metadata, imported_image, member_files
from banger.core.errors import InvalidInput, NameTaken
from banger.core.models import Image, ProgressEvent
from banger.core.names import validate_name
from banger.core.oci import default_size_cap
from banger.core.units import format_size
from banger.daemon.ociimages import free_bytes
from banger.daemon.progress import Progress
from banger.daemon.store import Store
from banger.host.bundle import Codec, stream_bundle, unpack_stream


class ImageBundles:
    def __init__(
        self, store: Store, images_dir: Path, codec: Codec, get_image: Callable[[str], Image],
    ) -> None:
        self._store = store
        self._dir = images_dir
        self._codec = codec
        self._get = get_image

    def export(self, name: str) -> AsyncGenerator[bytes, None]:
        """The image's bundle, piece by piece; a missing image or file is raised here,
        before the first piece."""
        image = self._get(name)
        files = member_files(image)
        for path in files.values():
            if not Path(path).is_file():
                raise InvalidInput(f"image {name!r} is missing its file {path}",
                                   hint="pull or register the image again")
        return stream_bundle(files, image_metadata(image), self._codec)

    def check_new_name(self, as_name: str | None) -> None:
        """Refuse a bad or taken --name before any of the bundle is read."""
        if as_name is not None:
            validate_name(as_name)
            self._refuse_taken(as_name, renamed=True)

    async def import_(
        self, bundle: AsyncIterator[bytes], as_name: str | None, file_name: str,
        progress: Progress,
    ) -> Image:
        """Unpack the bundle arriving as `bundle` (the client's file `file_name`), check
        every member's checksum, then register it: anything off leaves nothing behind."""
        self.check_new_name(as_name)
        staging = self._dir / f".import-{os.getpid()}-{time.monotonic_ns()}"
        staging.mkdir(parents=True)
        started = time.monotonic()
        try:
            manifest = await unpack_stream(
                bundle, staging, self._codec, default_size_cap(free_bytes(staging))
            )
            # From here to the store's row nothing awaits: no other import can take the name.
            name = as_name or validate_name(str(manifest.image.get("name", "")))
            self._refuse_taken(name, renamed=as_name is not None)
            final = self._dir / name
            shutil.rmtree(final, ignore_errors=True)  # an unrecorded leftover
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fields = {field: str(final / member) for field, member in MEMBERS.items()
                  if manifest.member(member) is not None}
        usage = sum(p.stat().st_blocks * 512 for p in final.iterdir() if p.is_file())
        image = imported_image(manifest, name, fields, usage, file_name)
        self._store.put_image(image)
        progress(ProgressEvent(
            "import", f"imported {name} ({format_size(usage)} on disk) in "
            f"{time.monotonic() - started:.0f}s", 1.0,
        ))
        kernel = image.kernel_name
        if not image.kernel and kernel and self._store.get_kernel(kernel) is None:
            progress(ProgressEvent(
                "warning", f"warning: the image boots kernel {image.kernel_name!r}, which is "
                f"not in this host's kernel store: `banger kernel pull {image.kernel_name}`",
            ))
        return image

    def _refuse_taken(self, name: str, *, renamed: bool) -> None:
        if self._store.get_image(name) is not None:
            raise NameTaken(
                f"image {name!r} already exists",
                hint="pick another name" if renamed else
                "import it under another name with --name, or delete the existing image",
            )
