#!/bin/sh
# The Debian packages banger needs on the host (and, with "test", what its tests need).
set -eu
packages="python3 python3-venv qemu-system-x86 qemu-utils mmdebstrap e2fsprogs
openssh-client iproute2 nftables git ca-certificates lz4 zstd busybox-static gpgv
debian-archive-keyring"
if [ "${1:-}" = "test" ]; then
    packages="$packages bash-completion zsh fish bind9-dnsutils docker-registry skopeo umoci
btrfs-progs shellcheck"
fi
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    # shellcheck disable=SC2086
    apt-get install -y -q $missing >&2
fi
