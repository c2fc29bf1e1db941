#!/bin/sh
# Install banger for this machine: system packages, a venv under /opt/banger (Debian's
# Python is externally managed) holding the locked dependencies (requirements/runtime.txt,
# checked against their hashes), and `banger`/`bangerd` on PATH. Run as root.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${BANGER_PREFIX:-/opt/banger}
bindir=${BANGER_BINDIR:-/usr/local/bin}

"$here/scripts/system-packages.sh"
/usr/bin/python3 -m venv "$prefix"
"$prefix/bin/pip" install -q --require-hashes -r "$here/requirements/runtime.txt"
"$prefix/bin/pip" install -q --no-deps --no-build-isolation --upgrade "$here"
ln -sf "$prefix/bin/banger" "$bindir/banger"
ln -sf "$prefix/bin/bangerd" "$bindir/bangerd"
echo "banger installed: $("$bindir/banger" --version)" >&2
