#!/bin/sh
# Remove banger's entry points and venv, after stopping the daemon. User data stays.
set -eu
prefix=${BANGER_PREFIX:-/opt/banger}
bindir=${BANGER_BINDIR:-/usr/local/bin}
if [ -x "$bindir/banger" ]; then
    "$bindir/banger" daemon stop || true
fi
rm -f "$bindir/banger" "$bindir/bangerd"
rm -rf "$prefix"
cat <<MSG
banger removed. Your data is still here; delete it by hand for a full purge:
  ~/.config/banger/       config, managed SSH keys, known_hosts
  ~/.local/state/banger/  VM records and disks, images, daemon DB and log
  ~/.cache/banger/        download caches
MSG
