#!/bin/sh
# banger-boot: apply per-VM identity from the kernel command line before network and sshd.
set -eu

# Builtins where they do: every exec costs tens of ms under TCG, on the way to sshd.
read -r cmdline < /proc/cmdline
arg() {
    for word in $cmdline; do
        case "$word" in "$1="*) printf '%s\n' "${word#*=}"; return 0 ;; esac
    done
    return 0
}

# A VM restored from a warm template gets these from banger-agent instead.
ip_cidr=${BANGER_IP-$(arg banger.ip)}
gateway=${BANGER_GW-$(arg banger.gw)}
dns=${BANGER_DNS-$(arg banger.dns)}
name=${BANGER_HOSTNAME-$(arg banger.hostname)}

if [ -n "$name" ]; then
    printf '%s\n' "$name" > /etc/hostname
    printf '%s' "$name" > /proc/sys/kernel/hostname
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s %s.vm\n::1\tlocalhost ip6-localhost\n' \
        "$name" "$name" > /etc/hosts
fi

# The address goes on directly with one `ip` call: networkd would add ~5 s under TCG to the
# way to sshd. Trees without iproute2 (OCI pulls) keep networkd and get a .network file.
# banger-agent (BANGER_IP set) puts the address on itself, with the VM's MAC.
nic=eth0
if [ -n "$ip_cidr" ] && [ -z "${BANGER_IP+set}" ] && command -v ip >/dev/null; then
    [ -e "/sys/class/net/$nic" ] || modprobe -q virtio_net 2>/dev/null || true
    i=0
    while [ ! -e "/sys/class/net/$nic" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    # As networkd had it: no IPv6 link-local address, no router advertisements.
    printf 0 > "/proc/sys/net/ipv6/conf/$nic/accept_ra" || true
    printf 1 > "/proc/sys/net/ipv6/conf/$nic/addr_gen_mode" || true
    {
        printf 'link set %s up\naddress add %s dev %s\n' "$nic" "$ip_cidr" "$nic"
        [ -n "$gateway" ] && printf 'route add default via %s dev %s\n' "$gateway" "$nic"
    } | ip -batch -
elif [ -n "$ip_cidr" ]; then
    mkdir -p /run/systemd/network
    {
        printf '[Match]\nType=ether\nKind=!*\n\n[Network]\nAddress=%s\n' "$ip_cidr"
        [ -n "$gateway" ] && printf 'Gateway=%s\n' "$gateway"
        [ -n "$dns" ] && printf 'DNS=%s\n' "$dns"
        printf 'LinkLocalAddressing=no\nIPv6AcceptRA=no\n'
    } > /run/systemd/network/10-banger.network
fi
if [ -n "$dns" ]; then
    rm -f /etc/resolv.conf
    printf 'nameserver %s\n' "$dns" > /etc/resolv.conf
fi

# /root is the work disk. Give it the skeleton dotfiles once, and the perms sshd's
# StrictModes expects.
for f in .bashrc .profile; do
    [ -e "/root/$f" ] || cp "/etc/skel/$f" "/root/$f" 2>/dev/null || true
done
chown root:root /root
chmod 0700 /root
if [ -d /root/.ssh ]; then
    chmod 0700 /root/.ssh
    [ -f /root/.ssh/authorized_keys ] && chmod 0600 /root/.ssh/authorized_keys
fi

seed=/root/@SEED@
if [ -f "$seed/ssh_host_ed25519_key" ]; then
    install -m 0600 -o root -g root "$seed/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
    install -m 0644 -o root -g root "$seed/ssh_host_ed25519_key.pub" \
        /etc/ssh/ssh_host_ed25519_key.pub
elif [ ! -f /etc/ssh/ssh_host_ed25519_key ]; then
    # Not started by banger (no seed): still let sshd come up.
    ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
fi
if [ -f "$seed/machine-id" ]; then
    cp "$seed/machine-id" /etc/machine-id
fi
