"""A stand-in for the `ssh` binary (BANGER_SSH_COMMAND="python fake_ssh.py"): it skips
ssh's options and runs the remote command here, through `sh -c`, as sshd would run it for
the remote user. FAKE_SSH_ENV (JSON) is added to that command's environment, which is how a
test gives "the remote host" its own XDG dirs; FAKE_SSH_LOG gets each argv as a JSON line;
FAKE_SSH_FAIL=N exits N at once with a message on stderr, as ssh does when it cannot
connect."""

from __future__ import annotations

import json
import os
import sys

# ssh options that take a value (enough of them for banger's argv).
_WITH_VALUE = {"-o", "-p", "-i", "-F", "-S", "-J", "-L", "-R", "-W", "-l", "-E"}


def main(argv: list[str]) -> int:
    if log := os.environ.get("FAKE_SSH_LOG"):
        with open(log, "a") as f:
            f.write(json.dumps(argv) + "\n")
    if fail := os.environ.get("FAKE_SSH_FAIL"):
        sys.stderr.write("ssh: connect to host devbox port 22: Connection refused\n")
        return int(fail)
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            index += 1
            break
        if not word.startswith("-"):
            break
        index += 2 if word in _WITH_VALUE else 1
    command = argv[index + 1:]  # after the destination
    env = {**os.environ, **json.loads(os.environ.get("FAKE_SSH_ENV", "{}"))}
    os.execvpe("sh", ["sh", "-c", " ".join(command)], env)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
