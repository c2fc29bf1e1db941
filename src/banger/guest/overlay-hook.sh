#!/bin/sh
# banger: make / an overlayfs: the image's read-only root below, this VM's disk above.
dev=
for word in $(cat /proc/cmdline); do
    case "$word" in @ARG@=*) dev="${word#*=}" ;; esac
done
[ -n "$dev" ] || exit 0
fail() {
    echo "banger-overlay: $*; / stays read-only" > /dev/console
    exit 0
}
i=0
while [ ! -b "$dev" ] && [ "$i" -lt 20 ]; do sleep 1; i=$((i + 1)); done
[ -b "$dev" ] || fail "no overlay disk $dev"
# overlay.ko lives in the image, not in a small initrd.
modprobe -d "$rootmnt" overlay 2>/dev/null || modprobe overlay 2>/dev/null || true
mkdir -p /banger/ro /banger/rw
mount -t ext4 "$dev" /banger/rw || fail "cannot mount $dev"
mkdir -p /banger/rw/upper /banger/rw/work
mount -n -o move "$rootmnt" /banger/ro || fail "cannot move the root mount"
if ! mount -t overlay -o lowerdir=/banger/ro,upperdir=/banger/rw/upper,workdir=/banger/rw/work \
        overlay "$rootmnt"; then
    mount -n -o move /banger/ro "$rootmnt"
    fail "cannot mount the overlay"
fi
mkdir -p "$rootmnt@LOWER@" "$rootmnt@UPPER@"
mount -n -o move /banger/ro "$rootmnt@LOWER@"
mount -n -o move /banger/rw "$rootmnt@UPPER@"
exit 0
