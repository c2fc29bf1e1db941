#!/bin/busybox sh
# banger's initrd: load the microVM drivers, mount root=, switch to the image's init.
# Every command is a fork under TCG: builtins where they do.
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
load() {
    while read -r module; do
        insmod "/@MODULES@/$module" 2>/dev/null
    done < "$1"
}
load /@ORDER@
root=/dev/vda
init=/sbin/init
mode=rw
rootfstype=ext4
overlay=
read -r cmdline < /proc/cmdline
for word in $cmdline; do
    case "$word" in
        root=*) root="${word#root=}" ;;
        init=*) init="${word#init=}" ;;
        rootfstype=*) rootfstype="${word#rootfstype=}" ;;
        ro) mode=ro ;;
        rw) mode=rw ;;
        @OVERLAY_ARG@=*) overlay="${word#*=}" ;;
    esac
done
# Sets dev to the block device for $1 (a path, LABEL= or UUID=), waiting up to 30 s.
find_dev() {
    i=0
    while [ "$i" -lt 300 ]; do
        case "$1" in
            LABEL=*|UUID=*) dev=$(findfs "$1" 2>/dev/null) ;;
            *) dev="$1" ;;
        esac
        [ -n "$dev" ] && [ -b "$dev" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# The root overlay: the image's read-only root below, this VM's disk above.
mount_overlay() {
    find_dev "$overlay" || { echo "banger-initrd: no overlay disk $overlay"; return 1; }
    load /@OVERLAY_ORDER@
    mkdir -p /banger/ro /banger/rw
    mount -t ext4 "$dev" /banger/rw || return 1
    mkdir -p /banger/rw/upper /banger/rw/work
    mount --move /newroot /banger/ro || { umount /banger/rw; return 1; }
    if ! mount -t overlay -o lowerdir=/banger/ro,upperdir=/banger/rw/upper,workdir=/banger/rw/work \
            overlay /newroot; then
        mount --move /banger/ro /newroot
        umount /banger/rw
        return 1
    fi
    mkdir -p /newroot@LOWER@ /newroot@UPPER@
    mount --move /banger/ro /newroot@LOWER@
    mount --move /banger/rw /newroot@UPPER@
}
find_dev "$root"
if ! mount -t "$rootfstype" -o "$mode" "$dev" /newroot; then
    echo "banger-initrd: cannot mount root $root; dropping to a shell"
    exec sh
fi
if [ -n "$overlay" ] && ! mount_overlay; then
    echo "banger-initrd: cannot mount the root overlay; / stays read-only"
fi
# The work disk (/root in fstab) mounted now: else systemd waits for udev's coldplug to
# announce the device, and banger-boot, sshd and most of the boot wait for /root. Systemd
# adopts the mount. A warm template's blank placeholder disk has no label and stays as is.
work=$(findfs LABEL=@WORK_LABEL@ 2>/dev/null) && mount -t ext4 "$work" /newroot/root
if [ ! -x "/newroot$init" ] && [ ! -L "/newroot$init" ]; then
    echo "banger-initrd: the image has no $init (it needs systemd, or init= on the cmdline)"
fi
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
umount /proc
exec switch_root /newroot "$init"
