"""Workspaces: which files of a git checkout go into a guest, and the guest-side shell scripts
that unpack a copy and export the changes made to it. Pure: git's output and the file kinds
come in as values; the scripts go out as text for whoever runs them (ssh, or `sh` in tests).

The copy is the git metadata (`.git`, whole) plus every tracked and every untracked,
not-ignored file as it is in the working tree, so `git status` in the guest reads like on the
host. The export diffs the guest's working state against the base commit through a temporary
index and a temporary object directory: the guest's own index, refs and objects are never
written, so nothing the user did in the guest (commits included) is changed or lost."""

from __future__ import annotations

import enum
import posixpath
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from banger.core.errors import (
    BangerError,
    Conflict,
    GuestCommandFailed,
    InvalidInput,
    NotFound,
)

DEFAULT_GUEST_PATH = "/root/repo"
TOOLING_LOG_DIR = "/root/.cache/banger"
GITLINK_MODE = "160000"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
TOOL_FILES = (".mise.toml", "mise.toml", ".tool-versions")
# The copy is unpacked into a directory named so, next to its destination, then moved there.
RESERVED_PREFIX = ".banger-workspace."
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

# Exit statuses of the guest scripts, so the client can raise the right error.
EXIT_EXISTS = 17
EXIT_BRANCH = 18
EXIT_NO_DIR = 20
EXIT_NOT_REPO = 21
EXIT_NO_BASE = 22


class Kind(enum.Enum):
    FILE = "file"
    SYMLINK = "symlink"
    DIR = "dir"
    MISSING = "missing"
    OTHER = "other"  # sockets, FIFOs, devices: nothing tar should carry


@dataclass(frozen=True)
class IndexEntry:
    mode: str
    path: str


@dataclass(frozen=True)
class Selection:
    """One repository's share of a workspace (paths relative to its root)."""

    paths: tuple[str, ...]
    submodules: tuple[str, ...]
    deleted: int


def split_z(output: bytes) -> list[str]:
    """NUL-separated paths (`git ... -z`) as str; undecodable bytes survive the round trip
    through os.fsencode (surrogateescape)."""
    return [p.decode("utf-8", "surrogateescape") for p in output.split(b"\0") if p]


def parse_index(output: bytes) -> list[IndexEntry]:
    """`git ls-files -z --stage`: one entry per path (a conflicted path has several stages)."""
    entries: dict[str, IndexEntry] = {}
    for record in split_z(output):
        meta, _, path = record.partition("\t")
        mode = meta.split(" ", 1)[0]
        entries.setdefault(path, IndexEntry(mode, path))
    return list(entries.values())


def select(
    index: Iterable[IndexEntry], untracked: Iterable[str], kind: Callable[[str], Kind]
) -> Selection:
    """The working-tree paths to copy: tracked ones that still exist (deleted ones are left
    out; the copied index still records them, so the guest sees them deleted too) and the
    untracked, not-ignored ones. An untracked nested repository comes as `dir/` and is taken
    whole, as `git status` shows it. Gitlinks are returned apart: the caller recurses."""
    paths: set[str] = set()
    submodules: list[str] = []
    deleted = 0
    for entry in index:
        if entry.mode == GITLINK_MODE:
            submodules.append(entry.path)
            continue
        found = kind(entry.path)
        if found in (Kind.FILE, Kind.SYMLINK):
            paths.add(entry.path)
        elif found == Kind.MISSING:
            deleted += 1
        # A directory where a file is tracked: its untracked content is listed on its own.
    for path in untracked:
        if path.endswith("/"):
            if kind(path.rstrip("/")) == Kind.DIR:
                paths.add(path.rstrip("/"))
        elif kind(path) in (Kind.FILE, Kind.SYMLINK):
            paths.add(path)
    return Selection(tuple(sorted(paths)), tuple(sorted(submodules)), deleted)


def check_submodule_gitfile(submodule: str, text: str) -> None:
    """A submodule's `.git` file must point inside the superproject (`../.git/modules/...`),
    which is copied with it; an absolute or escaping gitdir would dangle in the guest."""
    line = text.strip()
    if not line.startswith("gitdir:"):
        raise InvalidInput(f"submodule {submodule}: .git is not a gitdir file")
    gitdir = line.removeprefix("gitdir:").strip()
    resolved = posixpath.normpath(posixpath.join(submodule, gitdir))
    if posixpath.isabs(gitdir) or resolved == ".." or resolved.startswith("../"):
        raise InvalidInput(
            f"submodule {submodule} keeps its git data outside the repository ({gitdir})",
            hint="run `git submodule absorbgitdirs` in the repository, then try again",
        )


def guest_path(value: str) -> str:
    """A normalised absolute guest path for a workspace; `~/` means /root/."""
    path = value.strip()
    if path == "~" or path.startswith("~/"):
        path = "/root" + path[1:]
    if not path.startswith("/") or "\0" in path or "\n" in path:
        raise InvalidInput(
            f"invalid guest path {value!r}", hint="use an absolute path such as /root/repo"
        )
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if normal == "/":
        raise InvalidInput(
            f"invalid guest path {value!r}", hint="use a directory such as /root/repo"
        )
    return normal


def check_commit(value: str) -> str:
    """A full commit id, or "" for a repository without commits."""
    if value and not _COMMIT.fullmatch(value):
        raise InvalidInput(f"invalid commit id {value!r}", hint="pass a full hex commit id")
    return value


def tooling_log(repo_name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", repo_name).strip("-.") or "repo"
    return f"{TOOLING_LOG_DIR}/vm-run-tooling-{safe}.log"


# The guest scripts. They run under `sh -c` as root; anything but our own `banger-...` lines
# goes to stderr, so stdout stays parseable.

def prepare_script(
    dest: str, *, branch: str | None = None, from_ref: str | None = None,
    readonly: bool = False, tooling_log_path: str | None = None,
) -> str:
    """Unpack the tar stream on stdin into a fresh directory next to `dest`, switch branch if
    asked, then move it into place: a failure leaves nothing half-made at `dest`."""
    lines = [
        *_reserve_lines(dest),
        "trap 'rm -rf -- \"$tmp\"' EXIT",
        'tar -x -f - --no-same-owner -C "$tmp"',
        *_finish_lines(branch, from_ref, readonly, tooling_log_path),
    ]
    return "\n".join(lines) + "\n"


def reserve_script(dest: str) -> str:
    """prepare_script's first half, for a copy sent apart from the script (through the
    guest agent): make the empty directory next to `dest` the copy goes into; print it."""
    return "\n".join([*_reserve_lines(dest), 'printf "%s\\n" "$tmp"']) + "\n"


def reserved_dir(dest: str, output: bytes) -> str:
    """The directory reserve_script printed, checked to be where it makes them."""
    path = output.decode(errors="replace").strip()
    prefix = posixpath.join(posixpath.dirname(dest), RESERVED_PREFIX)
    if not path.startswith(prefix) or "/" in path[len(prefix):] or "\n" in path:
        raise InvalidInput(f"the guest reserved an unexpected directory {path[:200]!r}")
    return path


def finish_script(
    dest: str, reserved: str, *, branch: str | None = None, from_ref: str | None = None,
    readonly: bool = False, tooling_log_path: str | None = None,
) -> str:
    """prepare_script's second half, once the copy is in `reserved` (from reserve_script):
    switch branch if asked and move it into place; prints what prepare_script prints."""
    q = shlex.quote
    lines = [
        "set -eu",
        f"dest={q(dest)}",
        f"tmp={q(reserved)}",
        "trap 'rm -rf -- \"$tmp\"' EXIT",
        *_finish_lines(branch, from_ref, readonly, tooling_log_path),
    ]
    return "\n".join(lines) + "\n"


def _reserve_lines(dest: str) -> list[str]:
    return [
        "set -eu",
        f"dest={shlex.quote(dest)}",
        'parent=$(dirname -- "$dest")',
        'if [ -L "$dest" ] || { [ -e "$dest" ] && '
        '{ [ ! -d "$dest" ] || [ -n "$(ls -A -- "$dest")" ]; }; }; then',
        f'    echo "$dest already exists in the guest" >&2; exit {EXIT_EXISTS}',
        "fi",
        'mkdir -p -- "$parent"',
        f'tmp=$(mktemp -d -- "$parent/{RESERVED_PREFIX}XXXXXX")',
    ]


def _finish_lines(
    branch: str | None, from_ref: str | None, readonly: bool, tooling_log_path: str | None,
) -> list[str]:
    q = shlex.quote
    lines = [
        'chmod 0755 "$tmp"',
        'cd -- "$tmp"',
    ]
    if branch:
        b = q(branch)
        if from_ref:
            switch = f"git checkout -q -b {b} {q(from_ref)} --"
        else:
            switch = (
                f"if git show-ref --verify -q refs/heads/{b}; then git checkout -q {b} --; "
                f"else git checkout -q -b {b}; fi"
            )
        lines.append(f"{{ {switch}; }} >&2 || exit {EXIT_BRANCH}")
    lines += [
        "head=$(git rev-parse -q --verify 'HEAD^{commit}' 2>/dev/null || true)",
        'rmdir -- "$dest" 2>/dev/null || true',
        'mv -T -- "$tmp" "$dest"',
        "trap - EXIT",
        'cd -- "$dest"',
        "printf 'banger-workspace head=%s\\n' \"$head\"",
    ]
    if readonly:
        # chmod alone does not stop root, the guest's user: the immutable flag does (where
        # the filesystem has one). Refresh the index first: git cannot write it afterwards.
        lines += [
            "git update-index -q --refresh >/dev/null 2>&1 || true",
            'chmod -R a-w -- "$dest"',
            "if command -v chattr >/dev/null 2>&1 && "
            "find \"$dest\" \\( -type f -o -type d \\) -exec chattr +i {} + 2>/dev/null; then",
            "    echo 'banger-workspace readonly=immutable'",
            "else",
            "    echo 'banger-workspace readonly=chmod'",
            "fi",
        ]
    if tooling_log_path:
        # Best effort, in the background, detached from this ssh session: never fails the run.
        log = q(tooling_log_path)
        tests = " || ".join(f"[ -f {q(name)} ]" for name in TOOL_FILES)
        lines += [
            f"if {tests}; then",
            '    mise=$(command -v mise 2>/dev/null || true)',
            '    local_mise="$HOME/.local/bin/mise"',
            '    [ -n "$mise" ] || [ ! -x "$local_mise" ] || mise="$local_mise"',
            '    if [ -n "$mise" ]; then',
            f"        mkdir -p {q(posixpath.dirname(tooling_log_path))}",
            '        MISE="$mise" setsid nohup sh -c \'"$MISE" trust --all >/dev/null 2>&1; '
            f'exec "$MISE" install\' >{log} 2>&1 </dev/null &',
            f"        echo 'banger-workspace tooling='{log}",
            "    else",
            "        echo 'banger-workspace tooling=no-mise'",
            "    fi",
            "fi",
        ]
    return lines


@dataclass(frozen=True)
class PrepareOutput:
    head: str
    readonly: str  # "" | "immutable" | "chmod"
    tooling: str  # "" (no tool files) | "no-mise" | the log path


def parse_prepare_output(stdout: bytes) -> PrepareOutput:
    values = _banger_lines(stdout, "banger-workspace ")
    if "head" not in values:
        raise GuestCommandFailed("the guest did not report the workspace's HEAD")
    return PrepareOutput(
        check_commit(values["head"]), values.get("readonly", ""), values.get("tooling", "")
    )


def export_script(dest: str, base: str) -> str:
    """Print one header line, then the patch of the guest's working state against `base` (a
    commit id or any name the guest copy resolves; "" for the empty tree):
    a `git format-patch` series when the guest committed on top of base (uncommitted work
    becomes one last patch), else one `git diff`. New objects go to a temporary object
    directory, the staging to a temporary index: the repository itself is only read."""
    q = shlex.quote
    git = (
        "git -c core.quotepath=true -c diff.noprefix=false -c diff.mnemonicprefix=false "
        "-c color.ui=false"
    )
    lines = [
        "set -eu",
        f"dest={q(dest)}",
        f"base={q(base)}",
        f'cd -- "$dest" 2>/dev/null || {{ echo "$dest does not exist in the guest" >&2; '
        f"exit {EXIT_NO_DIR}; }}",
        "gitdir=$(git rev-parse --absolute-git-dir 2>/dev/null) || "
        f'{{ echo "$dest is not a git repository" >&2; exit {EXIT_NOT_REPO}; }}',
        'if [ -n "$base" ]; then',
        '    resolved=$(git rev-parse -q --verify "$base^{commit}" 2>/dev/null) || '
        f'{{ echo "base commit $base is not in $dest" >&2; exit {EXIT_NO_BASE}; }}',
        '    base=$resolved',
        "fi",
        "tmp=$(mktemp -d)",
        "trap 'rm -rf -- \"$tmp\"' EXIT",
        'mkdir "$tmp/objects"',
        # The index copy only saves re-reading unchanged files; `add -A` makes it exact.
        '[ ! -f "$gitdir/index" ] || cp -- "$gitdir/index" "$tmp/index"',
        'GIT_ALTERNATE_OBJECT_DIRECTORIES="$gitdir/objects${GIT_ALTERNATE_OBJECT_DIRECTORIES:+:'
        '$GIT_ALTERNATE_OBJECT_DIRECTORIES}"',
        'GIT_INDEX_FILE="$tmp/index"',
        'GIT_OBJECT_DIRECTORY="$tmp/objects"',
        "export GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_INDEX_FILE GIT_OBJECT_DIRECTORY",
        "git add -A -- . >&2",
        "tree=$(git write-tree)",
        "head=$(git rev-parse -q --verify 'HEAD^{commit}' 2>/dev/null || true)",
        "format=diff; commits=0; note=",
        'if [ -n "$head" ] && [ "$head" != "$base" ]; then',
        '    if [ -z "$base" ]; then range="$head"; else range="$base..$head"; fi',
        '    if [ -n "$base" ] && ! git merge-base --is-ancestor "$base" "$head"; then',
        "        note=diverged",
        '    elif [ -n "$(git rev-list --merges $range)" ]; then',
        "        note=merges",
        "    else",
        "        format=mbox",
        "        commits=$(git rev-list --count $range)",
        "    fi",
        "fi",
        "wip=0",
        'if [ "$format" = mbox ]; then',
        '    tip="$head"',
        "    if [ \"$tree\" != \"$(git rev-parse \"$head^{tree}\")\" ]; then",
        "        name=$(git config user.name || echo banger)",
        "        email=$(git config user.email || echo banger@localhost)",
        '        export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-$name}" '
        'GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-$email}"',
        '        export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-$name}" '
        'GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-$email}"',
        '        tip=$(git commit-tree "$tree" -p "$head" '
        '-m "Uncommitted changes in $dest (exported by banger)")',
        "        wip=1",
        "    fi",
        '    if [ -z "$base" ]; then range="--root $tip"; else range="$base..$tip"; fi',
        "    printf 'banger-export format=mbox base=%s head=%s commits=%s wip=%s\\n' "
        '"$base" "$head" "$commits" "$wip"',
        f"    {git} format-patch --stdout --binary --full-index -M --no-signature "
        "--no-color --no-numbered $range",
        "else",
        "    printf 'banger-export format=diff base=%s head=%s commits=%s note=%s\\n' "
        '"$base" "$head" "$commits" "$note"',
        f'    {git} diff --cached --binary --full-index -M --no-color --no-ext-diff '
        f'--no-textconv "${{base:-{EMPTY_TREE}}}"',
        "fi",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ExportHeader:
    format: str  # "diff" (apply with `git apply`) | "mbox" (apply with `git am`)
    base: str
    head: str
    commits: int  # guest commits on top of base (mbox only)
    wip: bool  # mbox: the last patch holds uncommitted changes
    note: str  # diff despite guest commits: "diverged" | "merges"


def parse_export_output(stdout: bytes) -> tuple[ExportHeader, bytes]:
    first, _, patch = stdout.partition(b"\n")
    values = _banger_lines(first + b"\n", "banger-export ")
    if values.get("format") not in ("diff", "mbox"):
        raise GuestCommandFailed("the guest did not produce a workspace patch")
    header = ExportHeader(
        format=values["format"],
        base=check_commit(values.get("base", "")),
        head=check_commit(values.get("head", "")),
        commits=int(values.get("commits", "0") or 0),
        wip=values.get("wip") == "1",
        note=values.get("note", ""),
    )
    return header, patch


def describe_export(header: ExportHeader, size: int) -> str:
    """The stderr line that says what the patch is and how to apply it."""
    base = header.base[:12] or "the empty tree"
    if size == 0:
        return f"no changes in the guest copy since {base}"
    if header.format == "mbox":
        patches = header.commits + int(header.wip)
        extra = " (the last one holds the uncommitted changes)" if header.wip else ""
        return (
            f"git format-patch series: {patches} patch{'es' if patches != 1 else ''} on top of "
            f"{base}{extra}; apply with `git am` on a checkout of {base}"
        )
    why = {
        "diverged": "; the guest's history does not contain the base commit any more, so "
                    "its commits are folded into this diff",
        "merges": "; the guest's commits include merges, which format-patch cannot carry, so "
                  "they are folded into this diff",
    }.get(header.note, "")
    return f"git diff against {base}; apply with `git apply` on a checkout of {base}{why}"


def guest_error(
    status: int, stderr: str, *, vm: str, dest: str, stage: str
) -> BangerError:
    """The typed error for a guest script that exited with `status`."""
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {status}"
    if status == 255:
        return GuestCommandFailed(
            f"could not reach {vm} over ssh: {detail}",
            hint=f"is it running? see `banger vm show {vm}`",
        )
    if status == EXIT_EXISTS:
        return Conflict(
            f"{dest} already exists in {vm}",
            hint="pick another --guest-path, or remove it first: "
                 f"banger vm ssh {vm} -- rm -rf {shlex.quote(dest)} (a --readonly copy needs "
                 f"`chattr -R -i {shlex.quote(dest)}` before)",
        )
    if status == EXIT_BRANCH:
        return InvalidInput(
            f"could not switch branch in the guest copy: {detail}",
            hint="check --branch/--from (a new branch cannot be made from a ref that "
                 "conflicts with uncommitted changes)",
        )
    if status in (EXIT_NO_DIR, EXIT_NOT_REPO):
        return NotFound(
            detail, hint=f"copy a repository there first: banger vm workspace prepare {vm}"
        )
    if status == EXIT_NO_BASE:
        return NotFound(detail, hint="pass the right commit with --base")
    return GuestCommandFailed(f"{stage} failed in {vm}: {detail}")


def _banger_lines(stdout: bytes, prefix: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        if not line.startswith(prefix):
            continue
        for word in line.removeprefix(prefix).split(" "):
            key, sep, value = word.partition("=")
            if sep:
                values[key] = value
    return values
