#!/bin/sh
# Remove banger's entry points and venv: first stop its running VMs (gracefully; their disks
# stay) and the daemon, and take banger's block out of ~/.ssh/config. User data stays.
# Acts on the banger of the user who runs it (the daemon is per user).
set -eu
prefix=${BANGER_PREFIX:-/opt/banger}
bindir=${BANGER_BINDIR:-/usr/local/bin}
banger=$bindir/banger

if [ -x "$banger" ]; then
    # Guests left running would outlive the daemon as unmanaged QEMU processes. Ask only a
    # daemon that is already up: `vm list` would start one.
    if [ -S "$("$banger" daemon socket)" ]; then
        "$banger" vm list --json | "$prefix/bin/python" -c '
import json, sys
for vm in json.load(sys.stdin):
    if vm["state"] not in ("created", "stopped"):
        print(vm["name"])
' | while read -r name; do
            "$banger" vm stop "$name" || true
        done
    fi
    "$banger" ssh-config --uninstall || true
    "$banger" daemon stop || true
fi
rm -f "$bindir/banger" "$bindir/bangerd"
rm -rf "$prefix"

config=${XDG_CONFIG_HOME:-$HOME/.config}/banger
state=${XDG_STATE_HOME:-$HOME/.local/state}/banger
cache=${XDG_CACHE_HOME:-$HOME/.cache}/banger
echo "banger removed. Your data is still here; delete it by hand for a full purge:"
printf '  %-40s %s\n' "$config/" "config, SSH key, known_hosts, ssh_config" \
    "$state/" "VM records and disks, images, kernels, daemon DB and log" \
    "$cache/" "download caches"
