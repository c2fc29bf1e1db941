"""The host<->guest channel of warm templates: the guest agent baked into every image and the
line protocol it speaks over a virtio-serial port.

A template VM boots with ``banger.agent`` on its kernel command line and no per-VM identity:
no address, hostname, host keys or work disk. The agent answers the host's ``PING`` with
``READY`` once the boot has settled; the host then saves the paused VM (device state + its
memory file). Every VM restored from that template resumes inside the agent's read loop, and
the host sends one ``IDENTITY`` line: address, MAC, hostname, the wall clock and fresh host
randomness. The agent mounts the VM's own work disk at /root, runs the same identity step a
cold boot runs (banger-boot: host keys, machine-id, network), reseeds the kernel RNG, starts
sshd and answers ``OK`` (or ``ERR <why>``). Nothing here performs I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from banger.core.guest import AGENT_KERNEL_FLAG, BOOT_SCRIPT_PATH, WORK_DISK_LABEL

PORT_NAME = "org.banger.agent"
AGENT_SCRIPT_PATH = "/usr/local/lib/banger/banger-agent"
AGENT_UNIT_NAME = "banger-agent.service"
# On the kernel command line of template VMs only; cold boots never start the agent.
KERNEL_FLAG = AGENT_KERNEL_FLAG
# Bytes of host randomness each restored VM mixes into its kernel RNG before reseeding.
SEED_BYTES = 64

PING = "PING"
READY = "READY"
# The agent asks for the host's clock once its identity is applied; the host answers
# "TIME <ns since the epoch>".
TIME = "TIME"


@dataclass(frozen=True)
class Identity:
    """What makes a VM restored from a template a distinct machine (the rest of it, host
    keys, machine-id and authorized_keys, is staged on its work disk as for a cold boot)."""

    ip_cidr: str
    gateway: str
    dns: str
    hostname: str
    mac: str
    now_ns: int  # host wall clock, nanoseconds since the epoch
    seed: bytes  # fresh randomness for the guest's RNG


def identity_line(identity: Identity) -> str:
    """The one line the host sends; every value is a token without spaces (the hostname is
    a validated DNS label, the rest are addresses and hex)."""
    seconds, nanos = divmod(identity.now_ns, 1_000_000_000)
    fields = {
        "ip": identity.ip_cidr,
        "gw": identity.gateway,
        "dns": identity.dns,
        "hostname": identity.hostname,
        "mac": identity.mac,
        "time": f"{seconds}.{nanos:09d}",
        "seed": identity.seed.hex(),
    }
    for key, value in fields.items():
        if not value or any(c.isspace() for c in value) or "=" in value:
            raise ValueError(f"identity field {key}={value!r} is not a single token")
    return "IDENTITY " + " ".join(f"{key}={value}" for key, value in fields.items()) + "\n"


@dataclass(frozen=True)
class Reply:
    ok: bool
    detail: str


def time_line(now_ns: int) -> str:
    return f"{TIME} {now_ns}\n"


def parse_reply(line: str) -> Reply | None:
    """The agent's answer to IDENTITY, or None for other lines (late READYs to PINGs that
    were still queued in the template's port buffer when it was saved)."""
    text = line.strip()
    if text == "OK" or text.startswith("OK "):
        return Reply(True, text[3:])
    if text.startswith("ERR"):
        return Reply(False, text[4:] or "unknown error")
    return None


AGENT_SCRIPT = r"""#!/bin/bash
# banger-agent: runs only in a template VM (__FLAG__ on the kernel command line).
# It tells the host when the boot has settled, then waits, across the snapshot, for the
# identity of the VM restored from it, applies that identity and starts sshd.
set -u
say() { echo "banger-agent: $*" > /dev/console 2>/dev/null; echo "banger-agent: $*"; }

port=
for d in /sys/class/virtio-ports/vport*; do
    [ "$(cat "$d/name" 2>/dev/null)" = "__PORT__" ] && port=/dev/${d##*/}
done
[ -n "$port" ] || { say "no host channel __PORT__"; exit 1; }
exec 3<>"$port"
reply() { printf '%s\n' "$*" >&3; }

next_line() {
    # A read with no host connected returns EOF at once (and so does every read right after
    # a restore, until the new host connects): poll until a whole line arrives.
    line=
    while :; do
        local chunk=
        if IFS= read -r chunk <&3; then line+=$chunk; return 0; fi
        line+=$chunk
        sleep 0.02
    done
}

reseed() {
    # Credit the host's bytes to the pool and force a reseed of the CRNG (RNDADDENTROPY,
    # RNDRESEEDCRNG): without it every clone of a template draws the same random stream.
    perl -e 'open(my $f, ">", "/dev/urandom") or exit 1; my $b = pack("H*", $ARGV[0]);
             ioctl($f, 0x40085203, pack("ii", 8 * length($b), length($b)) . $b) or exit 2;
             ioctl($f, 0x5207, 0) or exit 3;' "$1" && return 0
    say "warning: could not reseed the kernel RNG (no perl?); mixing the seed in only"
    printf '%s' "$1" > /dev/urandom
}

mount_work() {
    # The work disk is the second virtio disk by construction. The template saw a blank,
    # larger disk there: drop its cached blocks, and read only the superblock (probing the
    # whole device would read past the end of this VM's smaller disk).
    mountpoint -q /root && return 0
    local dev=/dev/vdb
    [ -b "$dev" ] || return 1
    blockdev --flushbufs "$dev" 2>/dev/null
    [ "$(e2label "$dev" 2>/dev/null)" = "__LABEL__" ] || return 1
    mount -t ext4 -o defaults "$dev" /root
}

sync_clock() {
    # One NTP-like exchange with the host, after the identity is applied: the identity's
    # own timestamp is late by however long the restored guest took to read it.
    local t0 t1 host ns
    t0=$(date +%s%N)
    reply __TIME__
    next_line
    t1=$(date +%s%N)
    case "$line" in "__TIME__ "*) host=${line#__TIME__ } ;; *) return 1 ;; esac
    ns=$(( host + (t1 - t0) / 2 ))
    date -u -s "@$(( ns / 1000000000 )).$(printf '%09d' $(( ns % 1000000000 )))" > /dev/null
}

apply() {
    local kv ip= gw= dns= hostname= mac= now= seed= iface
    for kv in "$@"; do
        case "$kv" in
            ip=*) ip=${kv#ip=} ;; gw=*) gw=${kv#gw=} ;; dns=*) dns=${kv#dns=} ;;
            hostname=*) hostname=${kv#hostname=} ;; mac=*) mac=${kv#mac=} ;;
            time=*) now=${kv#time=} ;; seed=*) seed=${kv#seed=} ;;
        esac
    done
    [ -n "$now" ] && date -u -s "@$now" > /dev/null
    t0=$(date +%s%N)
    [ -n "$seed" ] && reseed "$seed"
    t1=$(date +%s%N)
    mount_work || { error="no work disk labelled __LABEL__"; return 1; }
    t2=$(date +%s%N)
    BANGER_IP=$ip BANGER_GW=$gw BANGER_DNS=$dns BANGER_HOSTNAME=$hostname __BOOT__ \
        || { error="banger-boot failed"; return 1; }
    t3=$(date +%s%N)
    iface=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
    [ -n "$iface" ] || { error="no network interface"; return 1; }
    t4=$(date +%s%N)
    # The address is set while sshd starts: the host waits for sshd's banner at it anyway.
    printf '%s\n' "link set dev $iface down" \
        ${mac:+"link set dev $iface address $mac"} "link set dev $iface up" \
        "addr flush dev $iface" "addr add $ip dev $iface" \
        ${gw:+"route replace default via $gw"} | ip -batch - &
    local net=$!
    systemctl start ssh.service 2>/dev/null || systemctl start sshd.service \
        || { error="sshd did not start"; return 1; }
    wait "$net" || { error="cannot set address $ip on $iface"; return 1; }
    t5=$(date +%s%N)
    sync_clock || { error="no clock from the host"; return 1; }
    say "timing ms: reseed $(( (t1-t0)/1000000 )) mount $(( (t2-t1)/1000000 ))" \
        "identity $(( (t3-t2)/1000000 )) network+sshd $(( (t5-t4)/1000000 ))"
    return 0
}

settled=
while next_line; do
    case "$line" in
        __PING__)
            # Never block here: the host pings every few seconds during the boot, and any
            # ping still queued when the template is saved is answered again by every VM
            # restored from it, which must cost nothing.
            if [ -z "$settled" ]; then
                case "$(systemctl is-system-running 2>/dev/null)" in
                    running|degraded) sync; settled=1 ;;
                esac
            fi
            [ -n "$settled" ] && reply __READY__
            ;;
        "IDENTITY "*)
            say "identity received at uptime $(cut -d' ' -f1 /proc/uptime)"
            error=
            # shellcheck disable=SC2086 # the fields are single tokens by construction
            if apply ${line#IDENTITY }; then
                reply OK
                say "identity applied: $(hostname)"
                exit 0
            fi
            say "FAILED: $error"
            reply "ERR $error"
            ;;
    esac
done
""".replace("__FLAG__", KERNEL_FLAG).replace("__PORT__", PORT_NAME).replace(
    "__LABEL__", WORK_DISK_LABEL
).replace("__BOOT__", BOOT_SCRIPT_PATH).replace("__PING__", PING).replace(
    "__READY__", READY
).replace("__TIME__", TIME)

AGENT_UNIT = f"""\
[Unit]
Description=banger agent: per-VM identity for VMs restored from a warm template
ConditionKernelCommandLine={KERNEL_FLAG}
After=local-fs.target

[Service]
Type=simple
ExecStart={AGENT_SCRIPT_PATH}
StandardOutput=journal

[Install]
WantedBy=multi-user.target
"""
