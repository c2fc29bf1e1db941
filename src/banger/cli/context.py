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

    def require_local_daemon(self, command: str) -> None:
        """Refuse a command whose paths the daemon would resolve on its own host, when that
        host is a remote one (they would name its files, not this machine's). Commands that
        call it check their paths after it (the daemon checks them too), so a remote user
        hears why before hearing that a path is missing here."""
        remote = self.client.remote
        if remote is not None:
            from banger.core.errors import InvalidInput

            raise InvalidInput(
                f"`banger {command}` takes files on the daemon's host ({remote.url}) and "
                "leaves them there: it does not copy files from this machine",
                hint=f"run it on that host: ssh {remote.destination} banger {command} ...",
            )
