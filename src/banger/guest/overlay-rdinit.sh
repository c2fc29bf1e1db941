#!/bin/sh
# banger: put the root overlay step first in initramfs-tools' init-bottom, then run /init.
# banger's own initrd mounts the overlay in its /init.
order=/scripts/init-bottom/ORDER
if [ -f "$order" ]; then
    { echo '@HOOK@ "$@"'; cat "$order"; } > /banger/ORDER
    cat /banger/ORDER > "$order"
elif [ ! -f @MARKER@ ]; then
    echo "banger: no $order in this initramfs; / stays read-only" > /dev/console
fi
exec /init "$@"
