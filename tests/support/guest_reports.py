"""What a guest's port report looks like, as captured from a real one."""

from __future__ import annotations

# ss pads some lines with trailing blanks; kept as captured.
GUEST_SS = "\n".join([
    '@ss',
    'udp UNCONN 0      0        0.0.0.0:5300 0.0.0.0:* users:(("python3",pid=353,fd=3))',
    'tcp LISTEN 0      5        0.0.0.0:3000 0.0.0.0:* users:(("python3",pid=349,fd=3))',
    'tcp LISTEN 0      128      0.0.0.0:22   0.0.0.0:* users:(("sshd",pid=330,fd=3))   ',
    'tcp LISTEN 0      5      127.0.0.1:3001 0.0.0.0:* users:(("python3",pid=351,fd=3))',
    'tcp LISTEN 0      128         [::]:7000    [::]:* users:(("python3",pid=355,fd=3))',
    'tcp LISTEN 0      128         [::]:22      [::]:* users:(("sshd",pid=330,fd=4))   ',
]) + "\n"
