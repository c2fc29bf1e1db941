"""The E2B-compatible endpoint, from the client's side: start it and learn where it is."""

from __future__ import annotations

from dataclasses import dataclass

TYPE_CHECKING = False  # not typing's: see banger.core.xdg
if TYPE_CHECKING:
    from banger.client import Client


@dataclass(frozen=True)
class E2BEndpoint:
    api_url: str
    sandbox_url: str
    api_key: str

    def environment(self) -> dict[str, str]:
        """The variables the e2b SDK reads."""
        return {"E2B_API_URL": self.api_url, "E2B_SANDBOX_URL": self.sandbox_url,
                "E2B_API_KEY": self.api_key}


def start_e2b_endpoint(client: Client) -> E2BEndpoint:
    """Make bangerd listen for the e2b SDK (once; again after a restart) and say where."""
    data = client.request("POST", "/v1/e2b/endpoint")
    return E2BEndpoint(str(data["api_url"]), str(data["sandbox_url"]), str(data["api_key"]))
