"""What every command receives: the lazily built API client and the --debug flag."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see banger.core.xdg

if TYPE_CHECKING:
    from banger.client import Client


class Context:
    def __init__(self, debug: bool = False) -> None:
        self.debug = debug
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from banger.client import Client

            self._client = Client()
        return self._client
