"""asyncssh, imported with the dependency warnings banger cannot act on silenced.

cryptography 51 warns that DSA is deprecated whenever a module touches its DSA classes, and
asyncssh 2.24's key support does so at import: five CryptographyDeprecationWarnings (two
lines each) that say nothing about banger, which never offers or accepts DSA keys.
The filter matches that category, that message and asyncssh's modules only; any other
warning still reaches the daemon's log (one JSON record each, see daemon/logs.py)."""

from __future__ import annotations

import warnings
from typing import Any


def load_asyncssh() -> Any:
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings(
        "ignore", message="DSA is deprecated", category=CryptographyDeprecationWarning,
        module=r"asyncssh(\.|$)",
    )
    import asyncssh

    return asyncssh
