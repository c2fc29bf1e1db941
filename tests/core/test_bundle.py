"""The import side of bundle manifests against crafted values."""

from __future__ import annotations

import pytest

from banger.core.bundle import Manifest, imported_image
from banger.core.errors import BadBundle


@pytest.mark.parametrize("created_at", [float("inf"), float("nan"), 1e300, -5.0])
def test_a_crafted_created_at_is_a_bad_bundle_not_an_internal_error(created_at: float) -> None:
    manifest = Manifest({"name": "x", "created_at": created_at})
    with pytest.raises(BadBundle, match="impossible created_at"):
        imported_image(manifest, "x", {"rootfs": "/r"}, 0, "b.bundle")


def test_an_ordinary_created_at_is_kept() -> None:
    image = imported_image(Manifest({"created_at": 1_700_000_000}), "x", {"rootfs": "/r"}, 0,
                           "b.bundle")
    assert image.created_at == 1_700_000_000
