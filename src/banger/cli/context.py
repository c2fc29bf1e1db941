"""What every command receives: the lazily built API client, the daemon it talks to
(--host/--context), and the --debug flag."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see banger.core.xdg

if TYPE_CHECKING:
    from banger.client import Client


class Context:
    def __init__(
        self, debug: bool = False, *, host: str | None = None, context: str | None = None,
    ) -> None:
        self.debug = debug
        self.host = host
        self.context = context
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from banger.client import Client

            self._client = Client(host=self.host, context=self.context)
        return self._client

    def unstarted_client(self) -> Client:
        """A client for the same daemon that never starts one (to ask whether it runs)."""
        from banger.client import Client

        return Client(host=self.host, context=self.context, autostart=False)
