"""Progress is data: services report typed events through a callback the API streams."""

from __future__ import annotations

from collections.abc import Callable

from banger.core.models import ProgressEvent

Progress = Callable[[ProgressEvent], None]


def no_progress(_: ProgressEvent) -> None:
    return None
