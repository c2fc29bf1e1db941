"""The base of every request body in the API's wire schema (core/api.py, core/guestapi.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from banger.core.errors import InvalidInput


@dataclass(frozen=True)
class Request:
    """A field without a default is required, and a required string may not be empty."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            required = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if required and getattr(self, field.name) == "":
                raise InvalidInput(f"{field.name} is required")

    def body(self) -> dict[str, Any]:
        """The JSON object the client sends."""
        return dataclasses.asdict(self)
