#!/usr/bin/perl
# banger-agent: runs only in a template VM (@FLAG@ on the kernel command line).
# It tells the host when the boot has settled, then waits, across the snapshot, for the
# identity of the VM restored from it and applies it.
#
# Perl, in one process, with syscalls instead of programs: under TCG every exec in a
# freshly restored guest costs tens of milliseconds (its code is translated anew), and the
# identity step is most of the time from restore to ssh. perl-base is in every Debian image;
# an image without perl gets no warm template (its VMs boot cold).
use strict;
use warnings;
use Fcntl qw(O_RDONLY O_RDWR O_WRONLY O_CREAT O_TRUNC);
use POSIX ();
use Socket qw(inet_aton);

my $PORT = '@PORT@';
my $VSOCK_PORT = @VSOCK_PORT@;
my $LABEL = '@LABEL@';
my $SEED = '/root/@SEED@';
my $WORK_DEV = '/dev/vdb';  # the second virtio disk, by construction

# x86_64 / aarch64 syscall numbers: clock_settime, clock_gettime, mount.
my %SYS = (
    x86_64  => { settime => 227, gettime => 228, mount => 165 },
    aarch64 => { settime => 112, gettime => 113, mount => 40 },
);
my $sys = $SYS{(POSIX::uname())[4]} or die "banger-agent: unknown architecture\n";

sub say_ {
    my $msg = "banger-agent: @_\n";
    if (open my $console, '>', '/dev/console') { print $console $msg; close $console }
    print STDOUT $msg;
}

sub clock_ns {
    my ($id) = @_;  # 0 realtime, 1 monotonic
    my $ts = "\0" x 16;
    syscall($sys->{gettime}, $id, $ts) == 0 or die "clock_gettime: $!\n";
    my ($s, $ns) = unpack 'q q', $ts;
    return $s * 1_000_000_000 + $ns;
}

sub set_clock_ns {
    my ($ns) = @_;
    my $ts = pack 'q q', int($ns / 1_000_000_000), $ns % 1_000_000_000;
    syscall($sys->{settime}, 0, $ts) == 0 or die "cannot set the clock: $!\n";
}

sub slurp {
    my ($path) = @_;
    open(my $f, '<', $path) or return undef;
    local $/;
    return scalar <$f>;
}

sub spew {
    my ($path, $text, $mode) = @_;
    sysopen(my $f, $path, O_WRONLY | O_CREAT | O_TRUNC, $mode // 0644)
        or die "cannot write $path: $!\n";
    print $f $text or die "cannot write $path: $!\n";
    close $f or die "cannot write $path: $!\n";
    chmod $mode, $path if defined $mode;
}

# --- The host channel: a virtio-serial port (QEMU), else vsock (Firecracker) -------------
my ($chan, $listener, $buf) = (undef, undef, '');
for my $dir (glob '/sys/class/virtio-ports/vport*') {
    my $name = slurp("$dir/name") // '';
    chomp $name;
    if ($name eq $PORT) { my ($dev) = $dir =~ m{([^/]+)$}; $chan = "/dev/$dev" }
}
my $fh;
if (defined $chan) {
    sysopen($fh, $chan, O_RDWR) or die "banger-agent: cannot open $chan: $!\n";
} else {
    # AF_VSOCK, any CID. A snapshot restore resets vsock connections, not the listener.
    socket($listener, 40, 1, 0) or die "banger-agent: no virtio-serial $PORT and no vsock: $!\n";
    bind($listener, pack('S S L L x4', 40, 0, $VSOCK_PORT, 0xFFFFFFFF))
        or die "banger-agent: cannot listen on vsock port $VSOCK_PORT: $!\n";
    listen($listener, 4) or die "banger-agent: listen: $!\n";
}

sub next_line {
    while (1) {
        if ((my $at = index $buf, "\n") >= 0) {
            my $line = substr $buf, 0, $at + 1, '';
            chomp $line;
            return $line;
        }
        if (!defined $fh) { accept($fh, $listener) or next; $buf = '' }
        my $got = sysread $fh, $buf, 4096, length $buf;
        next if $got;
        if ($listener) { close $fh; undef $fh; next }
        # A virtio-serial read with no host connected returns EOF at once, and so does every
        # read right after a restore until the new host connects: poll.
        select undef, undef, undef, 0.005;
    }
}

sub reply { my $line = "@_\n"; syswrite $fh, $line if defined $fh }

# --- The identity step -------------------------------------------------------------------
sub reseed {
    # Credit the host's bytes to the pool and force a reseed of the CRNG (RNDADDENTROPY,
    # RNDRESEEDCRNG): without it every clone of a template draws the same random stream.
    my $bytes = pack 'H*', $_[0];
    open(my $rnd, '>', '/dev/urandom') or die "cannot open /dev/urandom: $!\n";
    ioctl($rnd, 0x40085203, pack('i i', 8 * length $bytes, length $bytes) . $bytes)
        or die "RNDADDENTROPY: $!\n";
    ioctl($rnd, 0x5207, 0) or die "RNDRESEEDCRNG: $!\n";
}

sub mounted {
    my $info = slurp('/proc/self/mountinfo') // '';
    return $info =~ m{^\S+ \S+ \S+ \S+ \Q$_[0]\E }m;
}

sub mount_work {
    return if mounted('/root');
    # The template saw a blank, larger disk here: drop its cached blocks and read only the
    # superblock (probing the whole device would read past the end of this VM's disk).
    sysopen(my $dev, $WORK_DEV, O_RDONLY) or die "no work disk $WORK_DEV: $!\n";
    ioctl($dev, 0x1261, 0) or die "BLKFLSBUF $WORK_DEV: $!\n";
    my $sb = '';
    sysseek($dev, 1024, 0) && sysread($dev, $sb, 1024) == 1024 or die "cannot read $WORK_DEV\n";
    close $dev;
    (my $label = substr $sb, 0x78, 16) =~ s/\0.*//s;
    unpack('v', substr $sb, 0x38, 2) == 0xEF53 && $label eq $LABEL
        or die "no work disk labelled $LABEL\n";
    my ($source, $target, $type) = ($WORK_DEV, '/root', 'ext4');  # syscall() wants lvalues
    syscall($sys->{mount}, $source, $target, $type, 0, 0) == 0
        or die "cannot mount $WORK_DEV at /root: $!\n";
}

sub install_file {
    my ($from, $to, $mode) = @_;
    my $data = slurp($from);
    defined $data or die "missing $from\n";
    spew("$to.banger", $data, $mode);
    rename "$to.banger", $to or die "cannot install $to: $!\n";
}

sub identity_files {
    # What banger-boot does on a cold boot (core/guest.py BOOT_SCRIPT), without its execs.
    my ($name, $dns) = @_;
    spew('/etc/hostname', "$name\n");
    spew('/proc/sys/kernel/hostname', $name);
    spew('/etc/hosts', "127.0.0.1\tlocalhost\n127.0.1.1\t$name $name.vm\n"
        . "::1\tlocalhost ip6-localhost\n");
    if ($dns) { unlink '/etc/resolv.conf'; spew('/etc/resolv.conf', "nameserver $dns\n") }
    for my $dot ('.bashrc', '.profile') {
        next if -e "/root/$dot" || !-e "/etc/skel/$dot";
        install_file("/etc/skel/$dot", "/root/$dot", 0644);
    }
    chown 0, 0, '/root';
    chmod 0700, '/root';
    chmod 0700, '/root/.ssh' if -d '/root/.ssh';
    chmod 0600, '/root/.ssh/authorized_keys' if -f '/root/.ssh/authorized_keys';
    # sshd re-reads its host key for every connection: the listener the template started
    # serves this VM's key from now on.
    install_file("$SEED/ssh_host_ed25519_key", '/etc/ssh/ssh_host_ed25519_key', 0600);
    install_file("$SEED/ssh_host_ed25519_key.pub", '/etc/ssh/ssh_host_ed25519_key.pub', 0644);
    install_file("$SEED/machine-id", '/etc/machine-id', 0444) if -f "$SEED/machine-id";
}

# rtnetlink, so that no `ip` has to be started.
my $nl_seq = 0;
sub rtattr {
    my ($type, $data) = @_;
    my $len = 4 + length $data;
    return pack('S S', $len, $type) . $data . ("\0" x ((4 - $len % 4) % 4));
}
sub netlink {
    my ($sock, $type, $flags, $body, $what) = @_;
    my $seq = ++$nl_seq;
    my $msg = pack('L S S L L', 16 + length $body, $type, $flags | 0x1 | 0x4, $seq, 0) . $body;
    send($sock, $msg, 0, pack('S S L L', 16, 0, 0, 0)) or die "$what: $!\n";
    while (1) {
        defined recv($sock, my $answer, 65536, 0) or die "$what: $!\n";
        while (length $answer >= 20) {
            my ($len, $kind, undef, $got) = unpack 'L S S L', $answer;
            if ($kind == 2 && $got == $seq) {
                my $errno = -unpack('l', substr $answer, 16, 4);
                return if $errno == 0;
                $! = $errno;
                die "$what: $!\n";
            }
            last if $len < 16;
            substr($answer, 0, ($len + 3) & ~3, '');
        }
    }
}

sub network {
    my ($cidr, $gw, $mac) = @_;
    my ($ip, $prefix) = split m{/}, $cidr;
    # The VM's one virtio NIC: the only interface with a device behind it (not lo, nor a
    # bridge such as docker0, which sorts before eth0).
    my ($nic) = grep { -e "/sys/class/net/$_/device" } map { m{([^/]+)$} } glob '/sys/class/net/*';
    defined $nic or die "no network interface\n";
    # As a cold boot has it: no IPv6 link-local address, no router advertisements.
    spew("/proc/sys/net/ipv6/conf/$nic/accept_ra", "0");
    spew("/proc/sys/net/ipv6/conf/$nic/addr_gen_mode", "1");
    my $index = slurp("/sys/class/net/$nic/ifindex") + 0;
    socket(my $nl, 16, 3, 0) or die "netlink: $!\n";  # AF_NETLINK, SOCK_RAW, NETLINK_ROUTE
    my $link = pack('C x S l L L', 0, 0, $index, 1, 1);  # IFF_UP
    $link .= rtattr(1, pack 'H*', $mac =~ s/://gr) if $mac;  # IFLA_ADDRESS
    netlink($nl, 16, 0, $link, "cannot set up $nic");  # RTM_NEWLINK
    my $addr = inet_aton($ip) // die "bad address $ip\n";
    netlink($nl, 20, 0x400 | 0x100,  # RTM_NEWADDR, CREATE | REPLACE
            pack('C C C C L', 2, $prefix, 0, 0, $index) . rtattr(2, $addr) . rtattr(1, $addr),
            "cannot set address $cidr on $nic");
    if ($gw) {
        my $via = inet_aton($gw) // die "bad gateway $gw\n";
        netlink($nl, 24, 0x400 | 0x100,  # RTM_NEWROUTE main table, boot proto, unicast
                pack('C C C C C C C C L', 2, 0, 0, 0, 254, 3, 0, 1, 0)
                . rtattr(5, $via) . rtattr(4, pack 'L', $index),
                "cannot route via $gw");
    }
    close $nl;
}

sub sshd_running {
    my $pid = slurp('/run/sshd.pid') // return 0;
    chomp $pid;
    return $pid =~ /^\d+$/ && kill 0, $pid;
}

sub sync_clock {
    # One NTP-like exchange with the host, after the identity is applied: the identity's
    # own timestamp is late by however long the restored guest took to read it.
    my $t0 = clock_ns(0);
    reply '@TIME@';
    my $line = next_line();
    my $t1 = clock_ns(0);
    $line =~ /^@TIME@ (\d+)$/ or die "no clock from the host\n";
    set_clock_ns($1 + int(($t1 - $t0) / 2));
}

sub apply {
    my %f = map { split /=/, $_, 2 } @_;
    my @t = (clock_ns(1));
    if ($f{time}) { my ($s, $ns) = split /\./, $f{time}; set_clock_ns($s * 1_000_000_000 + $ns) }
    reseed($f{seed}) if $f{seed};
    push @t, clock_ns(1);
    mount_work();
    push @t, clock_ns(1);
    identity_files($f{hostname}, $f{dns});
    push @t, clock_ns(1);
    # Last: nothing can reach this VM, nor its sshd, before its own keys are in place.
    network($f{ip}, $f{gw}, $f{mac});
    push @t, clock_ns(1);
    if (!sshd_running()) {
        system('systemctl', 'start', 'ssh.service') == 0
            or system('systemctl', 'start', 'sshd.service') == 0
            or die "sshd did not start\n";
    }
    sync_clock();
    push @t, clock_ns(1);
    my @ms = map { int(($t[$_] - $t[$_ - 1]) / 1e6) } 1 .. $#t;
    say_("timing ms: clock+reseed $ms[0] mount $ms[1] files $ms[2] network $ms[3]"
        . " sshd+sync $ms[4]");
}

sub settle {
    # Template only: once the boot settled, start sshd with a placeholder host key (every
    # restored VM installs its own before its network comes up) and flush the disks.
    my $state = `systemctl is-system-running 2>/dev/null` // '';
    return 0 unless $state =~ /^(running|degraded)/;
    if (!-e '/etc/ssh/ssh_host_ed25519_key') {
        system('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f',
               '/etc/ssh/ssh_host_ed25519_key') == 0 or say_('warning: ssh-keygen failed');
    }
    system('systemctl', 'start', 'ssh.service') == 0
        or system('systemctl', 'start', 'sshd.service') == 0
        or say_('warning: sshd did not start in the template');
    system('sync');
    return 1;
}

my $settled = 0;
while (defined(my $line = next_line())) {
    if ($line eq '@PING@') {
        # The host pings every few seconds during the boot, and any ping still queued when
        # the template is saved is answered again by every VM restored from it: cheap.
        $settled ||= settle();
        reply '@READY@' if $settled;
    } elsif ($line =~ /^IDENTITY (.*)$/) {
        my @fields = split ' ', $1;
        say_('identity received at uptime ' . ((split ' ', slurp('/proc/uptime') // '?')[0]));
        if (eval { apply(@fields); 1 }) {
            reply 'OK';
            say_('identity applied: ' . (slurp('/proc/sys/kernel/hostname') // '?'));
            exit 0;
        }
        chomp(my $error = $@);
        say_("FAILED: $error");
        reply "ERR $error";
    }
}
