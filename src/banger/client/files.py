"""Files in running guests, through banger's guest agent (no ssh): the `GuestFiles` half of
`Client`. Paths are absolute guest paths; a missing one raises GuestPathNotFound naming it."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from banger.client.transport import Response
    from banger.core.guestapi import FileEntry


class GuestFiles:
    if TYPE_CHECKING:
        def _open(
            self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None,
            raw: bytes | None = None, chunks: Iterable[bytes] | None = None,
        ) -> Response: ...

        def request(
            self, method: str, path: str, body: dict[str, Any] | None = None,
            *, timeout: float | None = 60.0,
        ) -> Any: ...

    def read_file(self, name: str, path: str) -> bytes:
        """The content of the file at `path` in the running VM `name`."""
        from banger.client import _json_body, _q, _query
        from banger.core.errors import error_from_dict

        response = self._open("GET", f"/v1/vms/{_q(name)}/files?{_query(path=path)}", None, None)
        try:
            if response.status >= 400:
                raise error_from_dict(_json_body(response)["error"])
            return response.read()
        finally:
            response.close()

    def write_file(
        self, name: str, path: str, data: bytes, mode: int = 0o644, owner: str | None = None,
    ) -> None:
        """Replace the file at `path` in the running VM `name` (atomically), owned by
        `owner` (USER or USER:GROUP in the guest; root by default)."""
        from banger.client import _json_body, _q, _query
        from banger.core.errors import error_from_dict

        params = {"path": path, "mode": f"{mode:o}"} | ({"owner": owner} if owner else {})
        response = self._open("PUT", f"/v1/vms/{_q(name)}/files?{_query(**params)}", None, None,
                              raw=data)
        try:
            answer = _json_body(response)
        finally:
            response.close()
        if response.status >= 400:
            raise error_from_dict(answer["error"])

    def list_files(self, name: str, path: str, depth: int = 1) -> list[FileEntry]:
        """The entries below directory `path`, `depth` levels down (symlinks not followed),
        in no particular order."""
        from banger.client import _q, _query

        data = self.request(
            "GET", f"/v1/vms/{_q(name)}/files/entries?{_query(path=path, depth=depth)}",
            timeout=None,
        )
        return [_entry(item) for item in data["entries"]]

    def stat_file(self, name: str, path: str) -> FileEntry:
        """`path` itself (a symlink is described, not followed)."""
        from banger.client import _q, _query

        data = self.request("GET", f"/v1/vms/{_q(name)}/files/stat?{_query(path=path)}")
        return _entry(data["entry"])

    def make_dir(self, name: str, path: str, mode: int = 0o755) -> FileEntry:
        """Like mkdir -p: the parents too, and an existing directory is fine."""
        from banger.client import _q

        data = self.request("POST", f"/v1/vms/{_q(name)}/files/mkdir",
                            {"path": path, "mode": mode})
        return _entry(data["entry"])

    def remove_file(self, name: str, path: str, recursive: bool = False) -> None:
        """Remove a file, a symlink or an empty directory (any directory with `recursive`)."""
        from banger.client import _q

        self.request("POST", f"/v1/vms/{_q(name)}/files/remove",
                     {"path": path, "recursive": recursive}, timeout=None)

    def rename_file(self, name: str, source: str, destination: str) -> FileEntry:
        from banger.client import _q

        data = self.request("POST", f"/v1/vms/{_q(name)}/files/rename",
                            {"source": source, "destination": destination})
        return _entry(data["entry"])

    def upload_tar(self, name: str, guest_dir: str, chunks: Iterable[bytes]) -> None:
        """Unpack the tar stream `chunks` into `guest_dir` (made if missing), streamed: any
        size. Files are owned by root in the guest, their modes kept."""
        from banger.client import _json_body, _q, _query
        from banger.core.errors import error_from_dict

        path = f"/v1/vms/{_q(name)}/files/tar?{_query(path=guest_dir)}"
        response = self._open("PUT", path, None, None, chunks=chunks)
        try:
            answer = _json_body(response) if response.status >= 400 else None
        finally:
            response.close()
        if answer is not None:
            raise error_from_dict(answer["error"])

    def download_tar(self, name: str, guest_dir: str) -> Iterator[bytes]:
        """The contents of `guest_dir` as a tar stream (members `./...`), as it comes. It
        comes from the guest: extract it with care (banger.client.tarextract)."""
        from banger.client import _json_body, _q, _query
        from banger.core.errors import DaemonUnavailable, error_from_dict

        response = self._open(
            "GET", f"/v1/vms/{_q(name)}/files/tar?{_query(path=guest_dir)}", None, None
        )
        try:
            if response.status >= 400:
                raise error_from_dict(_json_body(response)["error"])
            while piece := response.read_piece():
                yield piece
        except ConnectionResetError:
            raise DaemonUnavailable(f"the copy of {guest_dir} out of {name} was cut short",
                                    hint="see bangerd.log") from None
        finally:
            response.close()


def _entry(data: dict[str, Any]) -> FileEntry:
    from banger.core.guestapi import FileEntry

    return FileEntry(**data)
