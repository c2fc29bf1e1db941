#!/bin/sh
# The programs banger installs in guests (src/banger/guest/), each checked by its own tool
# as banger writes it (placeholders filled in): banger-agent by `perl -c`, the shell ones by
# ShellCheck as POSIX sh (the initrd's /init runs under busybox sh).
set -eu
python=${PYTHON:-python3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$python" - "$out" <<'PY'
import sys
from pathlib import Path

from banger.core import agent, guest, initrd

out = Path(sys.argv[1])
for name, text in [
    ("banger-agent.pl", agent.AGENT_SCRIPT),
    ("banger-boot.sh", guest.BOOT_SCRIPT),
    ("banger-install-ssh.sh", guest.SSH_INSTALL_SCRIPT),
    ("initrd-init.sh", initrd.INIT_SCRIPT),
    ("overlay-rdinit.sh", guest.OVERLAY_RDINIT),
    ("overlay-hook.sh", guest.OVERLAY_HOOK),
]:
    (out / name).write_text(text)
PY
perl -c "$out/banger-agent.pl"
shellcheck --shell=sh "$out/banger-boot.sh" "$out/banger-install-ssh.sh" \
    "$out/initrd-init.sh" "$out/overlay-rdinit.sh"
# An initramfs-tools init-bottom script: $rootmnt is initramfs-tools' own, and the kernel
# command line is one line of words.
shellcheck --shell=sh --exclude=SC2154,SC2013 "$out/overlay-hook.sh"
