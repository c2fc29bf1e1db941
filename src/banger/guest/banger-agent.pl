#!/usr/bin/perl
# banger-agent: the host's command channel into every VM (core/agentframe.py: exec over
# multiplexed frames). In a template VM (@FLAG@ on the kernel command line) it first tells
# the host when the boot has settled, then waits, across the snapshot, for the identity of
# the VM restored from it and applies it; a cold-booted VM serves the channel at once.
#
# Perl, in one process, with syscalls instead of programs: under TCG every exec in a
# freshly restored guest costs tens of milliseconds (its code is translated anew), and the
# identity step is most of the time from restore to ssh. perl-base is in every Debian image
# and the agent uses only modules of perl-base; an image without perl gets no warm template
# (its VMs boot cold) and no exec channel.
use strict;
use warnings;
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK O_NOCTTY O_RDONLY O_RDWR O_WRONLY O_CREAT O_TRUNC);
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

# --- The exec channel: frames of core/agentframe.py ---------------------------------------
# Every fd Perl opens is close-on-exec, so a command sees only its own stdin/stdout/stderr.
my $MAX_PAYLOAD = @MAX_PAYLOAD@;
my %T = (hello => @T_HELLO@, open_exec => @T_OPEN_EXEC@, stdin => @T_STDIN@,
         stdin_close => @T_STDIN_CLOSE@, kill => @T_KILL@, stdout => @T_STDOUT@,
         stderr => @T_STDERR@, exit => @T_EXIT@, error => @T_ERROR@,
         read_file => @T_READ_FILE@, write_file => @T_WRITE_FILE@, data => @T_DATA@,
         data_end => @T_DATA_END@, done => @T_DONE@, started => @T_STARTED@,
         resize => @T_RESIZE@, stdin_ack => @T_STDIN_ACK@);
# Files beyond read and write: frame types 20-29, served by on_files_frame.
my %TF = (list => @T_LIST@, entries => @T_ENTRIES@, mkdir => @T_MKDIR@, remove => @T_REMOVE@,
          rename => @T_RENAME@, untar => @T_UNTAR@);
my %KNOWN = map { $_ => 1 } values %T, values %TF;
# Linux's terminal ioctls (the same numbers on x86_64 and aarch64).
my ($TIOCSPTLCK, $TIOCGPTN, $TIOCSWINSZ, $TIOCSCTTY) = (0x40045431, 0x80045430, 0x5414, 0x540E);
my $PROTOCOL = '@PROTOCOL@';
my $HELLO = pack('N N C', length $PROTOCOL, 0, $T{hello}) . $PROTOCOL;
my $PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
my ($synced, $connected, %procs, %reads, %writes) = (0, 1);

sub nonblocking {
    my $flags = fcntl($_[0], F_GETFL, 0) or die "fcntl: $!\n";
    fcntl($_[0], F_SETFL, $flags | O_NONBLOCK) or die "fcntl: $!\n";
}

sub lost {
    # The host went away (or sent garbage): nobody can read these processes' output any
    # more, so they end with the connection, as an ssh session's do.
    for my $p (values %procs) {
        kill 'KILL', -$p->{pid} unless defined $p->{status};
        waitpid $p->{pid}, 0 unless defined $p->{status};
    }
    %procs = %reads = ();
    unlink $_->{temp} for values %writes;
    %writes = ();
    forget_untars();
    ($synced, $buf) = (0, '');
    if ($listener) { close $fh if defined $fh; undef $fh } else { $connected = 0 }
}

sub send_frame {
    my ($id, $type, $payload) = @_;
    return unless $synced && defined $fh;
    my $frame = pack('N N C', length $payload, $id, $type) . $payload;
    while (length $frame) {
        my $n = syswrite $fh, $frame;
        if (defined $n) { substr($frame, 0, $n, ''); next }
        next if $! == POSIX::EINTR();
        if ($! == POSIX::EAGAIN()) {  # the host reads slowly: wait for it (back-pressure)
            my $w = '';
            vec($w, fileno $fh, 1) = 1;
            select undef, $w, undef, 1;
            next;
        }
        lost();
        return;
    }
}

sub set_size {  # a PTY's size, `cols rows`
    my ($tty, $size) = @_;
    my ($cols, $rows) = $size =~ /^(\d{1,5}) (\d{1,5})$/ or return 0;
    return ioctl($tty, $TIOCSWINSZ, pack('S4', $rows, $cols, 0, 0));
}

sub open_pty {  # (master, the slave's path)
    my ($size) = @_;
    sysopen(my $master, '/dev/ptmx', O_RDWR | O_NOCTTY) or return;
    my ($unlock, $number) = (pack('i', 0), pack('I', 0));
    ioctl($master, $TIOCSPTLCK, $unlock) && ioctl($master, $TIOCGPTN, $number)
        && set_size($master, $size) or return;
    return ($master, '/dev/pts/' . unpack('I', $number));
}

sub spawn {
    my ($id, $payload) = @_;
    my (@argv, %env, $cwd, $user, $pty);
    for my $record (split /\0/, $payload) {
        my ($key, $value) = split /=/, $record, 2;
        next unless defined $value;
        if ($key eq 'arg') { push @argv, $value }
        elsif ($key eq 'sh') { @argv = ('/bin/sh', '-c', $value) }
        elsif ($key eq 'env') { my ($k, $v) = split /=/, $value, 2; $env{$k} = $v // '' }
        elsif ($key eq 'cwd') { $cwd = $value }
        elsif ($key eq 'user') { $user = $value }
        elsif ($key eq 'pty') { $pty = $value }
    }
    return 'nothing to run' unless @argv;
    my ($uid, $gid, $home, $shell) = (0, 0, '/root', '/bin/sh');
    if (defined $user) {
        my @pw = getpwnam $user or return "no user $user in the guest";
        ($uid, $gid, $home, $shell) = @pw[2, 3, 7, 8];
    }
    my ($in_r, $in_w, $out_r, $out_w, $err_r, $err_w, $tty);
    if (defined $pty) {  # stdin, stdout and stderr are the PTY's slave, its master our end
        ($out_r, $tty) = open_pty($pty) or return "cannot open a PTY: $!";
        open($in_w, '>&', $out_r) or return "dup: $!";
    } else {
        pipe($in_r, $in_w) && pipe($out_r, $out_w) && pipe($err_r, $err_w) or return "pipe: $!";
    }
    my $pid = fork;
    return "fork: $!" unless defined $pid;
    if (!$pid) {
        POSIX::setsid();
        if (defined $tty) {  # the new session's controlling terminal
            sysopen($in_r, $tty, O_RDWR) && ioctl($in_r, $TIOCSCTTY, 0) or POSIX::_exit(126);
            ($out_w, $err_w) = ($in_r, $in_r);
        }
        open(STDIN, '<&', $in_r) && open(STDOUT, '>&', $out_w) && open(STDERR, '>&', $err_w)
            or POSIX::_exit(126);
        $SIG{$_} = 'DEFAULT' for keys %SIG;
        if (defined $user) {
            POSIX::setgid($gid);
            $) = "$gid $gid";
            POSIX::setuid($uid) or do { print STDERR "cannot become $user: $!\n"; POSIX::_exit(126) };
        }
        %ENV = (PATH => $PATH, HOME => $home, SHELL => $shell, USER => $user // 'root',
                LOGNAME => $user // 'root', %env);
        my $dir = $cwd // $home;
        chdir $dir or do { print STDERR "cd: $dir: $!\n"; POSIX::_exit(1) };
        { no warnings 'exec'; exec { $argv[0] } @argv }
        my $missing = $! == POSIX::ENOENT();
        print STDERR "$argv[0]: ", ($missing ? 'command not found' : "$!"), "\n";
        POSIX::_exit($missing ? 127 : 126);
    }
    unless (defined $tty) { close $in_r; close $out_w; close $err_w }
    nonblocking($_) for grep { defined } $in_w, $out_r, $err_r;
    $procs{$id} = { id => $id, pid => $pid, in => $in_w, out => $out_r, err => $err_r,
                    pending => '', received => 0, close_in => 0, pty => defined $tty,
                    status => undef };
    send_frame($id, $T{started}, $pid);
    return undef;
}

sub on_frame {
    my ($id, $type, $payload) = @_;
    if ($type == $T{hello}) {  # a host that connected again without our seeing it leave
        lost();
        ($synced, $connected) = (1, 1);
        send_frame(0, $T{hello}, $PROTOCOL);
        return;
    }
    if (($type >= 20 && $type <= 29) || is_untar($id)) { on_files_frame($id, $type, $payload); return }
    if ($type == $T{read_file} || $type == $T{write_file} || $writes{$id}) {
        on_file_frame($id, $type, $payload);
        return;
    }
    my $p = $procs{$id};
    if ($type == $T{open_exec}) {
        my $error = $p ? "stream $id is in use" : spawn($id, $payload);
        send_frame($id, $T{error}, $error) if defined $error;
    } elsif (!$p) {
        return;  # a late frame for a process that has ended
    } elsif ($type == $T{stdin}) {
        # Bounded by the host, which waits for STDIN_ACK before it sends more.
        $p->{received} += length $payload;
        if ($p->{in}) { $p->{pending} .= $payload }
        else { send_frame($id, $T{stdin_ack}, $p->{received}) }  # stdin is closed: dropped
    } elsif ($type == $T{stdin_close}) {
        # A PTY has no end of file but its EOF character (in canonical mode).
        if ($p->{pty}) { $p->{pending} .= "\x04" if $p->{in} } else { $p->{close_in} = 1 }
    } elsif ($type == $T{kill}) {
        # Its process group, or the process alone if it has not made its group yet.
        kill($payload, -$p->{pid}) || kill($payload, $p->{pid})
            if $payload =~ /^\d{1,2}$/ && !defined $p->{status};
    } elsif ($type == $T{resize}) {
        set_size($p->{in}, $payload) if $p->{pty} && $p->{in};
    }
}

sub on_channel {
    my $got = sysread $fh, $buf, 65536, length $buf;
    if (!defined $got) {
        lost() unless $! == POSIX::EAGAIN() || $! == POSIX::EINTR();
        return;
    }
    if (!$got) { lost() if $connected || $listener; return }
    $connected = 1;
    if (!$synced) {
        my $at = index $buf, $HELLO;
        if ($at < 0) {  # keep only what could be the start of a HELLO
            substr($buf, 0, length($buf) - length($HELLO), '') if length $buf > length $HELLO;
            return;
        }
        substr($buf, 0, $at + length $HELLO, '');
        $synced = 1;
        send_frame(0, $T{hello}, $PROTOCOL);
    }
    while (length $buf >= 9) {
        my ($length, $id, $type) = unpack 'N N C', $buf;
        if ($length > $MAX_PAYLOAD || !$KNOWN{$type}) {
            say_("garbage from the host (frame type $type, $length bytes): dropping it");
            lost();
            return;
        }
        last if length $buf < 9 + $length;
        my $payload = substr $buf, 9, $length;
        substr($buf, 0, 9 + $length, '');
        on_frame($id, $type, $payload);
        return unless $synced;
    }
}

# --- Files: read streamed out, written to a temporary file renamed over the path at the end
sub fields {
    my %f;
    for my $record (split /\0/, $_[0]) { my ($k, $v) = split /=/, $record, 2; $f{$k} = $v }
    return %f;
}

sub file_error {  # "<errno> <message>": the host tells a missing path from other failures
    my ($id, $errno, $message) = @_;
    send_frame($id, $T{error}, ($errno + 0) . " $message");
}

sub on_file_frame {
    my ($id, $type, $payload) = @_;
    if ($type == $T{read_file}) {
        my %f = fields($payload);
        my $path = $f{path} // '';
        if (-d $path) { file_error($id, POSIX::EISDIR(), "$path is a directory"); return }
        sysopen(my $in, $path, O_RDONLY) or do { file_error($id, $!, "cannot read $path: $!"); return };
        $reads{$id} = $in;
    } elsif ($type == $T{write_file}) {
        my %f = fields($payload);
        my ($path, $mode) = ($f{path} // '', oct($f{mode} // '644'));
        my ($uid, $gid, $no_owner) = owner_ids($f{owner} // 'root');
        if (defined $no_owner) { file_error($id, POSIX::EINVAL(), "cannot write $path: $no_owner"); return }
        my $temp = "$path.banger-$id";
        sysopen(my $out, $temp, O_WRONLY | O_CREAT | O_TRUNC, 0600)
            or do { file_error($id, $!, "cannot write $path: $!"); return };
        $writes{$id} = { fh => $out, path => $path, temp => $temp, mode => $mode & 07777,
                         uid => $uid, gid => $gid };
    } elsif ($type == $T{data}) {
        my $w = $writes{$id};
        my $left = $payload;
        while (length $left) {
            my $n = syswrite $w->{fh}, $left;
            if (!defined $n) {
                file_error($id, $!, "cannot write $w->{path}: $!");
                unlink $w->{temp};
                delete $writes{$id};
                return;
            }
            substr($left, 0, $n, '');
        }
    } elsif ($type == $T{data_end}) {
        my $w = delete $writes{$id};
        if (close($w->{fh}) && chown($w->{uid}, $w->{gid}, $w->{temp})
            && chmod($w->{mode}, $w->{temp}) && rename($w->{temp}, $w->{path})) {
            send_frame($id, $T{done}, '');
        } else {
            file_error($id, $!, "cannot write $w->{path}: $!");
            unlink $w->{temp};
        }
    }
}

sub pump_reads {
    for my $id (keys %reads) {
        my $in = $reads{$id} or next;
        my $data;
        my $got = sysread $in, $data, $MAX_PAYLOAD;
        if ($got) { send_frame($id, $T{data}, $data); next }
        delete $reads{$id};
        close $in;
        if (defined $got) { send_frame($id, $T{done}, '') }
        else { file_error($id, $!, "cannot read: $!") }
    }
}

sub pump {
    my ($p, $key, $type) = @_;
    my $data;
    my $got = sysread $p->{$key}, $data, $MAX_PAYLOAD;
    return if !defined $got && ($! == POSIX::EAGAIN() || $! == POSIX::EINTR());
    if ($got) { send_frame($p->{id}, $type, $data); return }
    close $p->{$key};
    $p->{$key} = undef;
}

sub feed_stdin {
    my ($p) = @_;
    if (length $p->{pending}) {
        my $n = syswrite $p->{in}, $p->{pending};
        if (defined $n) { substr($p->{pending}, 0, $n, '') }
        elsif ($! != POSIX::EAGAIN() && $! != POSIX::EINTR()) { $p->{pending} = ''; $p->{close_in} = 1 }
        send_frame($p->{id}, $T{stdin_ack}, $p->{received}) unless length $p->{pending};
    }
    if (!length $p->{pending} && $p->{close_in}) { close $p->{in}; $p->{in} = undef }
}

sub serve {
    $SIG{PIPE} = 'IGNORE';
    ($synced, $buf) = (0, '');
    nonblocking($fh) if defined $fh;
    while (1) {
        my ($rin, $win, $poll) = ('', '', !$connected);
        if (defined $fh) { vec($rin, fileno $fh, 1) = 1 if $connected }
        else { vec($rin, fileno $listener, 1) = 1 }
        for my $id (keys %procs) {
            my $p = $procs{$id};
            feed_stdin($p) if $p->{in} && $p->{close_in} && !length $p->{pending};
            vec($rin, fileno $p->{out}, 1) = 1 if $p->{out};
            vec($rin, fileno $p->{err}, 1) = 1 if $p->{err};
            vec($win, fileno $p->{in}, 1) = 1 if $p->{in} && length $p->{pending};
            if (!$p->{out} && !$p->{err}) {
                if (waitpid($p->{pid}, POSIX::WNOHANG()) == $p->{pid}) {
                    my $status = $?;
                    send_frame($id, $T{exit}, ($status & 127) ? 'signal ' . ($status & 127)
                                                                : 'exit ' . ($status >> 8));
                    delete $procs{$id};
                } else {
                    $poll = 1;  # its output is closed but it still runs
                }
            }
        }
        # A virtio-serial port without a host reads as EOF at once: poll until one connects.
        my ($rout, $wout) = ($rin, $win);
        my $n = select $rout, $wout, undef, %reads ? 0 : $poll ? 0.05 : undef;
        next if $n < 0;
        if (!defined $fh) { accept($fh, $listener) and nonblocking($fh); next }
        on_channel() if !$connected || vec($rout, fileno $fh, 1);
        pump_reads();
        for my $id (keys %procs) {
            my $p = $procs{$id} or next;
            pump($p, 'out', $T{stdout}) if $p->{out} && vec($rout, fileno $p->{out}, 1);
            pump($p, 'err', $T{stderr}) if $p->{err} && vec($rout, fileno $p->{err}, 1);
            feed_stdin($p) if $p->{in} && vec($wout, fileno $p->{in}, 1);
        }
    }
}

# --- Files beyond read and write: list, stat, mkdir, remove, rename, unpack a tar --------
# (core/agentfiles.py). A listing goes out an ENTRIES frame at a time as it walks.
my %untars;

sub owner_ids {  # "user[:group]" (names or numbers) -> (uid, gid) or (undef, undef, why)
    my ($user, $group) = split /:/, $_[0], 2;
    my ($uid, $gid);
    if ($user =~ /^\d+$/) { ($uid, $gid) = ($user, $user) }
    else { (undef, undef, $uid, $gid) = getpwnam $user or return (undef, undef, "no user $user in the guest") }
    if (defined $group && length $group) {
        $gid = $group =~ /^\d+$/ ? $group : scalar getgrnam $group;
        return (undef, undef, "no group $group in the guest") unless defined $gid;
    }
    return ($uid, $gid);
}

sub entry {  # (record, type) of one path, lstat'ed; () when it is gone
    my ($path, $names) = @_;
    my @st = lstat $path or return ();
    my $type = -l _ ? 'symlink' : -d _ ? 'dir' : -f _ ? 'file' : 'other';
    my $target = $type eq 'symlink' ? readlink($path) // '' : '';
    my ($uid, $gid) = @st[4, 5];
    $names->{"u$uid"} //= scalar(getpwuid $uid) // '';
    $names->{"g$gid"} //= scalar(getgrgid $gid) // '';
    my $record = join "\0", $type, sprintf('%o', $st[2] & 07777), $uid, $gid, $st[7], $st[9],
        $names->{"u$uid"}, $names->{"g$gid"}, $path, $target;
    return ("$record\0", $type);
}

sub walk {  # the entries below $dir, $levels deep, appended to $$out and sent frame by frame
    my ($id, $dir, $levels, $out, $names) = @_;
    opendir(my $dh, $dir) or return;
    while ($synced && defined(my $name = readdir $dh)) {
        next if $name eq '.' || $name eq '..';
        my $path = $dir eq '/' ? "/$name" : "$dir/$name";
        my ($record, $type) = entry($path, $names) or next;
        if (length($$out) + length($record) > $MAX_PAYLOAD) { send_frame($id, $TF{entries}, $$out); $$out = '' }
        $$out .= $record;
        walk($id, $path, $levels - 1, $out, $names) if $levels > 1 && $type eq 'dir';
    }
    closedir $dh;
}

sub list_path {
    my ($id, $path, $depth) = @_;
    my %names;
    my ($record, $type) = entry($path, \%names);
    my $what = $depth ? 'list' : 'stat';
    return file_error($id, $!, "cannot $what $path: $!") unless defined $record;
    if (!$depth) { send_frame($id, $TF{entries}, $record) }
    elsif ($type ne 'dir') { return file_error($id, POSIX::ENOTDIR(), "cannot list $path: Not a directory") }
    else {
        my $out = '';
        walk($id, $path, $depth, \$out, \%names);
        send_frame($id, $TF{entries}, $out) if length $out;
    }
    send_frame($id, $T{done}, '');
}

sub make_dirs {  # like mkdir -p; the last one gets $mode if made here. undef or (errno, why)
    my ($path, $mode) = @_;
    my ($sofar, $made) = ('', 0);
    for my $part (grep { length } split m{/}, $path) {
        $sofar .= "/$part";
        $made = 0;
        next if -d $sofar;
        mkdir $sofar, 0755 or return ($! + 0, "cannot make $sofar: $!");
        $made = 1;
    }
    chmod $mode, $path or return ($! + 0, "cannot make $path: $!") if $made;
    return ();
}

sub remove_tree {  # undef or (errno, why)
    my ($dir) = @_;
    opendir(my $dh, $dir) or return ($! + 0, "cannot remove $dir: $!");
    while (defined(my $name = readdir $dh)) {
        next if $name eq '.' || $name eq '..';
        my $path = "$dir/$name";
        lstat $path or next;
        if (-d _) { my @error = remove_tree($path); return @error if @error }
        else { unlink $path or return ($! + 0, "cannot remove $path: $!") }
    }
    closedir $dh;
    rmdir $dir or return ($! + 0, "cannot remove $dir: $!");
    return ();
}

sub answer_entry {
    my ($id, $path) = @_;
    my ($record) = entry($path, {});
    return file_error($id, $!, "cannot stat $path: $!") unless defined $record;
    send_frame($id, $TF{entries}, $record);
    send_frame($id, $T{done}, '');
}

sub on_files_frame {
    my ($id, $type, $payload) = @_;
    my %f = $type == $T{data} ? () : fields($payload);
    if ($type == $TF{list}) {
        list_path($id, $f{path} // '', ($f{depth} // '0') =~ /^(\d{1,2})$/ ? $1 : 0);
    } elsif ($type == $TF{mkdir}) {
        my @error = make_dirs($f{path} // '', oct($f{mode} // '755') & 07777);
        return file_error($id, @error) if @error;
        answer_entry($id, $f{path});
    } elsif ($type == $TF{remove}) {
        my $path = $f{path} // '';
        lstat $path or return file_error($id, $!, "cannot remove $path: $!");
        my @error = !-d _ ? (unlink($path) ? () : ($! + 0, "cannot remove $path: $!"))
                  : ($f{recursive} // '') eq '1' ? remove_tree($path)
                  : rmdir($path) ? () : ($! + 0, "cannot remove $path: $!");
        return file_error($id, @error) if @error;
        send_frame($id, $T{done}, '');
    } elsif ($type == $TF{rename}) {
        my ($from, $to) = ($f{source} // '', $f{destination} // '');
        rename $from, $to or return file_error($id, $!, "cannot rename $from to $to: $!");
        answer_entry($id, $to);
    } elsif ($type == $TF{untar}) {
        start_untar($id, $f{dir} // '');
    } elsif ($type == $T{data}) {
        feed_untar($untars{$id}, $payload);
    } elsif ($type == $T{data_end}) {
        end_untar($id);
    } elsif ($type == $T{kill}) {  # the host gave the upload up
        my $u = delete $untars{$id};
        kill 'KILL', $u->{pid};
        waitpid $u->{pid}, 0;
    }
}

# A tar stream from the host, piped into the guest's tar. The agent writes each DATA frame
# before it reads the next (back-pressure up to the host), and drains tar's stderr meanwhile.
sub is_untar { return exists $untars{$_[0]} }

sub start_untar {
    my ($id, $dir) = @_;
    my @error = make_dirs($dir, 0755);
    return file_error($id, @error) if @error;
    pipe(my $in_r, my $in_w) && pipe(my $err_r, my $err_w) or return file_error($id, $!, "pipe: $!");
    my $pid = fork;
    return file_error($id, $!, "fork: $!") unless defined $pid;
    if (!$pid) {
        open(STDIN, '<&', $in_r) && open(STDOUT, '>', '/dev/null') && open(STDERR, '>&', $err_w)
            && chdir $dir or POSIX::_exit(126);
        $SIG{$_} = 'DEFAULT' for keys %SIG;
        %ENV = (PATH => $PATH, HOME => '/root');
        { no warnings 'exec'; exec 'tar', '-x', '-o', '-f', '-' }
        print STDERR "the guest has no tar\n";
        POSIX::_exit(127);
    }
    close $in_r; close $err_w;
    nonblocking($_) for $in_w, $err_r;
    $untars{$id} = { pid => $pid, in => $in_w, err => $err_r, stderr => '', dir => $dir };
}

sub drain_untar {
    my ($u) = @_;
    my $got = sysread $u->{err}, my $data, 4096;
    return 1 if !defined $got && $! == POSIX::EAGAIN();
    return 0 unless $got;
    $u->{stderr} = substr $u->{stderr} . $data, 0, 4096;
    return 1;
}

sub feed_untar {
    my ($u, $data) = @_;
    while ($u->{in} && length $data) {
        my ($r, $w) = ('', '');
        vec($r, fileno $u->{err}, 1) = 1 if $u->{err};
        vec($w, fileno $u->{in}, 1) = 1;
        next if select($r, $w, undef, undef) < 0;
        if ($u->{err} && vec($r, fileno $u->{err}, 1) && !drain_untar($u)) { close $u->{err}; $u->{err} = undef }
        next unless vec($w, fileno $u->{in}, 1);
        my $n = syswrite $u->{in}, $data;
        if (defined $n) { substr($data, 0, $n, '') }
        elsif ($! != POSIX::EAGAIN() && $! != POSIX::EINTR()) { close $u->{in}; $u->{in} = undef }  # tar quit
    }
}

sub end_untar {
    my ($id) = @_;
    my $u = delete $untars{$id};
    close $u->{in} if $u->{in};
    while ($u->{err}) {
        my $r = '';
        vec($r, fileno $u->{err}, 1) = 1;
        select $r, undef, undef, undef;
        if (!drain_untar($u)) { close $u->{err}; $u->{err} = undef }
    }
    waitpid $u->{pid}, 0;
    return send_frame($id, $T{done}, '') if $? == 0;
    my $why = $u->{stderr} =~ s/\s+$//r || 'tar exit status ' . ($? >> 8);
    file_error($id, 0, "cannot unpack into $u->{dir}: $why");
}

sub forget_untars {
    for my $u (values %untars) {
        kill 'KILL', $u->{pid};
        waitpid $u->{pid}, 0;
    }
    %untars = ();
}

sub serve_identity {
    my $settled = 0;
    while (defined(my $line = next_line())) {
        if ($line eq '@PING@') {
            # The host pings every few seconds during the boot, and any ping still queued
            # when the template is saved is answered again by every VM restored from it.
            $settled ||= settle();
            reply '@READY@' if $settled;
        } elsif ($line =~ /^IDENTITY (.*)$/) {
            my @fields = split ' ', $1;
            say_('identity received at uptime ' . ((split ' ', slurp('/proc/uptime') // '?')[0]));
            if (eval { apply(@fields); 1 }) {
                reply 'OK';
                say_('identity applied: ' . (slurp('/proc/sys/kernel/hostname') // '?'));
                return;
            }
            chomp(my $error = $@);
            say_("FAILED: $error");
            reply "ERR $error";
        }
    }
}

serve_identity() if (slurp('/proc/cmdline') // '') =~ /(?:^|\s)\Q@FLAG@\E(?:\s|$)/;
serve();
