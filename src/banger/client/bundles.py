"""Image bundles through the API (`image export` / `image import`): the `ImageBundles` half
of `Client`. The bundle file is on this machine, the daemon may be on another one: export
writes the bytes the daemon streams, import uploads the file, streamed both ways (any size,
bounded memory). The daemon checks every checksum of an import before it registers it."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from banger.client.transport import Response
    from banger.core.models import Image, ProgressEvent
    from banger.core.paths import Paths
    from banger.core.remote import RemoteHost

    OnProgress = Callable[[ProgressEvent], None]

_PIECE = 1 << 20
_PROGRESS_EVERY = 0.5  # seconds between two progress events


class ImageBundles:
    if TYPE_CHECKING:
        remote: RemoteHost | None

        @property
        def paths(self) -> Paths: ...

        def _open(
            self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None,
            raw: bytes | None = None, chunks: Iterable[bytes] | None = None,
        ) -> Response: ...

        def _follow(self, response: Response, on_progress: OnProgress) -> Any: ...

        def get_image(self, name: str) -> Image: ...

    def export_image(
        self, name: str, path: str, *, on_progress: OnProgress = lambda _: None
    ) -> dict[str, Any]:
        """Write the image as a bundle file at `path`, on this machine. The file appears
        whole or not at all (written beside it, then renamed). Returns {"image", "path",
        "bytes"}."""
        import os
        import time

        from banger.client import _json_body, _q
        from banger.core.errors import DaemonUnavailable, InvalidInput, error_from_dict
        from banger.core.models import ProgressEvent
        from banger.core.units import format_size

        out = os.path.abspath(path)
        if not os.path.isdir(os.path.dirname(out)):
            raise InvalidInput(f"{os.path.dirname(out)} is not a directory")
        if os.path.isdir(out):
            raise InvalidInput(f"{out} is a directory", hint="name the bundle file to write")
        if self.remote is None:
            self._refuse_the_image_itself(name, out)
        started = time.monotonic()
        response = self._open("GET", f"/v1/images/{_q(name)}/bundle", None, None)
        partial = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.partial")
        made = False
        try:
            if response.status >= 400:
                raise error_from_dict(_json_body(response)["error"])
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            made = True
            report = _Progress(on_progress, "export", f"exporting {name}")
            with open(fd, "wb") as f:
                while piece := response.read_piece():
                    f.write(piece)
                    report.moved(len(piece))
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, out)
        except ConnectionResetError:
            raise DaemonUnavailable(f"the export of {name} was cut short",
                                    hint="see bangerd.log; nothing was written") from None
        finally:
            response.close()
            if made and os.path.exists(partial):
                os.unlink(partial)
        size = os.path.getsize(out)
        on_progress(ProgressEvent(
            "export", f"exported {name} to {out} ({format_size(size)}) in "
            f"{time.monotonic() - started:.0f}s", 1.0,
        ))
        return {"image": name, "path": out, "bytes": size}

    def _refuse_the_image_itself(self, name: str, out: str) -> None:
        """The daemon shares this filesystem: a bundle written over the image's own files,
        or into banger's image store, would wreck what it is made of."""
        import os

        from banger.core.errors import InvalidInput

        image = self.get_image(name)
        target = os.path.realpath(out)
        store = os.path.realpath(self.paths.images_dir)
        own = {os.path.realpath(p) for p in (image.rootfs, image.kernel, image.initrd) if p}
        if target.startswith(store + os.sep) or target in own:
            raise InvalidInput(f"{out} is inside banger's image store or is the image itself",
                               hint="write the bundle somewhere else")

    def import_image(
        self, path: str, *, as_name: str | None = None,
        on_progress: OnProgress = lambda _: None,
    ) -> Image:
        """Upload the bundle file at `path` (on this machine); the daemon registers the image
        once every checksum matched, and keeps nothing of a bad or cut-short upload."""
        import os
        from collections.abc import Iterator

        from banger.client import _image, _query
        from banger.core.errors import InvalidInput

        if not os.path.isfile(path):
            raise InvalidInput(f"{path} does not exist or is not a file")
        file_name = os.path.basename(path)
        query = _query(file=file_name, **({"as_name": as_name} if as_name else {}))
        with open(path, "rb") as f:
            report = _Progress(on_progress, "import", f"importing {file_name}",
                               os.fstat(f.fileno()).st_size)

            def pieces() -> Iterator[bytes]:
                while piece := f.read(_PIECE):
                    yield piece
                    report.moved(len(piece))

            response = self._open("POST", f"/v1/images/bundle?{query}", None, None,
                                  chunks=pieces())
            return _image(self._follow(response, on_progress))


class _Progress:
    """Progress events for bytes this side moves, at most one per _PROGRESS_EVERY."""

    def __init__(self, on_progress: OnProgress, stage: str, what: str,
                 total: int | None = None) -> None:
        self._on_progress = on_progress
        self._stage = stage
        self._what = what
        self._total = total
        self._done = 0
        self._last = float("-inf")

    def moved(self, count: int) -> None:
        import time

        from banger.core.models import ProgressEvent
        from banger.core.units import format_size

        self._done += count
        now = time.monotonic()
        if now - self._last < _PROGRESS_EVERY and self._done != self._total:
            return
        self._last = now
        if not self._total:
            message = f"{self._what}: {format_size(self._done)}"
            self._on_progress(ProgressEvent(self._stage, message))
            return
        fraction = min(self._done / self._total, 1.0)
        self._on_progress(ProgressEvent(
            self._stage, f"{self._what}: {format_size(self._done)} of "
            f"{format_size(self._total)} ({fraction:.0%})", fraction,
        ))
