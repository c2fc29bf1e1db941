#!/bin/sh
# The programs banger installs in guests, each checked by its own tool as banger writes it
# (placeholders filled in): banger-agent with `perl -c`, banger-boot and the initrd's /init
# with shellcheck (POSIX sh; /init runs under busybox sh).
set -eu
python=${PYTHON:-python3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$python" - "$out" <<'PY'
import sys
from pathlib import Path

from banger.core import agent, guest, initrd

out = Path(sys.argv[1])
(out / "banger-agent.pl").write_text(agent.AGENT_SCRIPT)
(out / "banger-boot.sh").write_text(guest.BOOT_SCRIPT)
(out / "initrd-init.sh").write_text(initrd.INIT_SCRIPT)
PY
perl -c "$out/banger-agent.pl"
shellcheck --shell=sh "$out/banger-boot.sh" "$out/initrd-init.sh"
