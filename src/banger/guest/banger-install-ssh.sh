#!/bin/sh
# banger-install-ssh: install openssh-server once, with the image's package manager.
say() { echo "banger: $*" > /dev/console; echo "banger: $*"; }
say "this image has no openssh-server; installing it (needs network: vm create --nat)"
i=0
while ! grep -q "$(printf '^[^\t]*\t00000000')" /proc/net/route && [ "$i" -lt 20 ]; do
    sleep 1; i=$((i + 1))
done
ok=1
if command -v apt-get >/dev/null; then
    # No service starts while dpkg runs: sshd comes up (below) only once the package is
    # configured, so a first login never meets a half-installed system.
    policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 0755 "$policy"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -q \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            openssh-server && ok=0
    [ -z "$policy" ] || rm -f "$policy"
elif command -v dnf >/dev/null; then dnf install -y openssh-server && ok=0
elif command -v microdnf >/dev/null; then microdnf install -y openssh-server && ok=0
elif command -v zypper >/dev/null; then zypper --non-interactive install openssh && ok=0
elif command -v apk >/dev/null; then apk add --no-cache openssh-server && ok=0
elif command -v pacman >/dev/null; then pacman -Sy --noconfirm openssh && ok=0
else
    say "FAILED: no known package manager (apt-get, dnf, zypper, apk, pacman) in this image"
    exit 1
fi
if [ "$ok" != 0 ]; then
    say "FAILED to install openssh-server: the VM has no route to a package mirror?" \
        "Create the VM with --nat, or pull an image that contains openssh-server."
    exit 1
fi
mkdir -p /etc/ssh/sshd_config.d
for unit in ssh.service sshd.service; do
    if systemctl cat "$unit" >/dev/null 2>&1; then
        systemctl enable "$unit" || true
        systemctl restart "$unit" && say "openssh-server installed; $unit started" && exit 0
    fi
done
say "FAILED: openssh-server installed but no ssh unit could be started"
exit 1
