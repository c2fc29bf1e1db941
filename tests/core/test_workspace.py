"""Workspace rules as plain values: git's output in, the selection, paths, scripts and
errors out. (Real repositories and the scripts run by `sh`: tests/client/test_workspace.py.)"""

from __future__ import annotations

import shlex
import subprocess

import pytest

from banger.core.errors import Conflict, GuestCommandFailed, InvalidInput, NotFound
from banger.core.workspace import (
    EXIT_BRANCH,
    EXIT_EXISTS,
    EXIT_NO_BASE,
    EXIT_NOT_REPO,
    ExportHeader,
    IndexEntry,
    Kind,
    check_commit,
    check_submodule_gitfile,
    describe_export,
    export_script,
    finish_script,
    guest_error,
    guest_path,
    parse_export_output,
    parse_index,
    parse_prepare_output,
    prepare_script,
    reserve_script,
    select,
    split_z,
    tooling_log,
)

SHA = "a" * 40


def test_split_z_keeps_odd_names_intact() -> None:
    raw = b"a b.txt\0new\nline\0\xc3\xbcn\xc3\xafcode\0latin1-\xe9\0"
    assert split_z(raw) == ["a b.txt", "new\nline", "ünïcode", "latin1-\udce9"]
    assert split_z(b"") == []


def test_parse_index_reads_modes_and_folds_conflict_stages() -> None:
    raw = (
        b"100644 " + SHA.encode() + b" 0\tplain.txt\0"
        b"100755 " + SHA.encode() + b" 0\trun me.sh\0"
        b"120000 " + SHA.encode() + b" 0\tlink\0"
        b"160000 " + SHA.encode() + b" 0\tlibs/sub\0"
        b"100644 " + SHA.encode() + b" 1\tconflict.txt\0"
        b"100644 " + SHA.encode() + b" 2\tconflict.txt\0"
        b"100644 " + SHA.encode() + b" 3\tconflict.txt\0"
    )
    assert parse_index(raw) == [
        IndexEntry("100644", "plain.txt"), IndexEntry("100755", "run me.sh"),
        IndexEntry("120000", "link"), IndexEntry("160000", "libs/sub"),
        IndexEntry("100644", "conflict.txt"),
    ]


def kinds(table: dict[str, Kind]) -> object:
    return lambda path: table.get(path, Kind.MISSING)


def test_select_tracked_untracked_deleted_and_odd_kinds() -> None:
    index = [
        IndexEntry("100644", "kept.txt"),
        IndexEntry("120000", "link"),
        IndexEntry("100644", "deleted.txt"),
        IndexEntry("100644", "now-a-dir"),
        IndexEntry("100644", "fifo"),
        IndexEntry("160000", "libs/sub"),
    ]
    untracked = ["new.txt", "now-a-dir/inside.txt", "nested-repo/", "gone-already.txt"]
    table = {
        "kept.txt": Kind.FILE, "link": Kind.SYMLINK, "now-a-dir": Kind.DIR,
        "fifo": Kind.OTHER, "new.txt": Kind.FILE, "now-a-dir/inside.txt": Kind.FILE,
        "nested-repo": Kind.DIR,
    }
    selection = select(index, untracked, kinds(table))  # type: ignore[arg-type]
    assert selection.paths == (
        "kept.txt", "link", "nested-repo", "new.txt", "now-a-dir/inside.txt"
    )
    assert selection.submodules == ("libs/sub",)
    assert selection.deleted == 1


@pytest.mark.parametrize(
    ("submodule", "text"),
    [("libs/sub", "gitdir: ../../.git/modules/libs/sub\n"), ("a", "gitdir: ../.git/modules/a")],
)
def test_submodule_gitfile_inside_the_superproject_is_fine(submodule: str, text: str) -> None:
    check_submodule_gitfile(submodule, text)


@pytest.mark.parametrize(
    "text", ["gitdir: /home/u/src/app/.git/modules/sub\n", "gitdir: ../../elsewhere/.git\n"]
)
def test_submodule_gitfile_pointing_outside_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="outside the repository") as info:
        check_submodule_gitfile("sub", text)
    assert "absorbgitdirs" in info.value.hint


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/root/repo", "/root/repo"),
        ("~/repo", "/root/repo"),
        ("/root/repo/", "/root/repo"),
        ("//srv//work/./x", "/srv/work/x"),
        ("/tmp/a b", "/tmp/a b"),
        ("/root/../srv/x", "/srv/x"),
    ],
)
def test_guest_path_normalises(value: str, expected: str) -> None:
    assert guest_path(value) == expected


@pytest.mark.parametrize("value", ["repo", "", "/", "/..", "/a\nb", "~user/x"])
def test_guest_path_rejects(value: str) -> None:
    with pytest.raises(InvalidInput, match="invalid guest path"):
        guest_path(value)


def test_check_commit() -> None:
    assert check_commit(SHA) == SHA
    assert check_commit("b" * 64) == "b" * 64
    assert check_commit("") == ""
    for bad in ("HEAD", "abc", SHA.upper(), SHA + "\n"):
        with pytest.raises(InvalidInput):
            check_commit(bad)


def test_tooling_log_name_is_a_safe_file_name() -> None:
    assert tooling_log("my-repo") == "/root/.cache/banger/vm-run-tooling-my-repo.log"
    assert tooling_log("we ird/$(x)") == "/root/.cache/banger/vm-run-tooling-we-ird-x.log"
    assert tooling_log("..") == "/root/.cache/banger/vm-run-tooling-repo.log"


DEST, BRANCH, REF = "/root/it's here", "feat/$(reboot)", "v1; rm -rf /"


@pytest.mark.parametrize(
    ("script", "values"),
    [
        (prepare_script(DEST, branch=BRANCH, from_ref=REF, readonly=True,
                        tooling_log_path="/root/.cache/banger/x.log"), (DEST, BRANCH, REF)),
        (prepare_script("/root/repo"), ("/root/repo",)),
        (reserve_script(DEST), (DEST,)),
        (finish_script(DEST, "/root/.banger-workspace.x", branch=BRANCH, from_ref=REF),
         (DEST, BRANCH, REF)),
        (export_script(DEST, SHA), (DEST, SHA)),
        (export_script("/root/repo", "main~1"), ("/root/repo", "main~1")),
    ],
)
def test_scripts_are_valid_sh_with_every_value_quoted(
    script: str, values: tuple[str, ...]
) -> None:
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0
    for value in values:
        assert shlex.quote(value) in script
    for dangerous in ("$(reboot)", "rm -rf /"):
        assert script.count(dangerous) == script.count(shlex.quote(BRANCH)) * (
            dangerous == "$(reboot)") + script.count(shlex.quote(REF)) * (dangerous == "rm -rf /")


def test_prepare_script_options_appear_only_when_asked() -> None:
    plain = prepare_script("/root/repo")
    assert "git checkout" not in plain and "chattr" not in plain and "mise" not in plain
    full = prepare_script("/root/repo", branch="b", readonly=True, tooling_log_path="/l/x.log")
    assert "git checkout -q -b b" in full and "chattr +i" in full and "mise" in full


def test_parse_prepare_output() -> None:
    out = (b"noise\nbanger-workspace head=" + SHA.encode() +
           b"\nbanger-workspace readonly=immutable\nbanger-workspace tooling=no-mise\n")
    parsed = parse_prepare_output(out)
    assert (parsed.head, parsed.readonly, parsed.tooling) == (SHA, "immutable", "no-mise")
    assert parse_prepare_output(b"banger-workspace head=\n").head == ""
    with pytest.raises(GuestCommandFailed):
        parse_prepare_output(b"")


def test_parse_export_output_splits_header_and_patch() -> None:
    patch = b"diff --git a/x b/x\n+banger-export format=mbox\n"
    header, body = parse_export_output(
        b"banger-export format=diff base=" + SHA.encode() + b" head=" + SHA.encode()
        + b" commits=0 note=\n" + patch
    )
    assert header == ExportHeader("diff", SHA, SHA, 0, False, "")
    assert body == patch
    header, _ = parse_export_output(
        b"banger-export format=mbox base= head=" + SHA.encode() + b" commits=3 wip=1\n"
    )
    assert (header.format, header.commits, header.wip) == ("mbox", 3, True)
    with pytest.raises(GuestCommandFailed):
        parse_export_output(b"something else\n")


def test_describe_export_says_how_to_apply() -> None:
    diff = ExportHeader("diff", SHA, SHA, 0, False, "")
    assert describe_export(diff, 10) == (
        f"git diff against {SHA[:12]}; apply with `git apply` on a checkout of {SHA[:12]}"
    )
    assert describe_export(diff, 0) == f"no changes in the guest copy since {SHA[:12]}"
    series = ExportHeader("mbox", SHA, "b" * 40, 1, False, "")
    assert "1 patch on top" in describe_export(series, 10)
    assert "`git am`" in describe_export(series, 10)
    wip = ExportHeader("mbox", SHA, "b" * 40, 2, True, "")
    assert "3 patches" in describe_export(wip, 10) and "uncommitted" in describe_export(wip, 10)
    merges = ExportHeader("diff", SHA, "b" * 40, 0, False, "merges")
    assert "merges" in describe_export(merges, 10)


@pytest.mark.parametrize(
    ("status", "error_type", "text"),
    [
        (255, GuestCommandFailed, "could not reach dev over ssh"),
        (EXIT_EXISTS, Conflict, "/root/repo already exists in dev"),
        (EXIT_BRANCH, InvalidInput, "could not switch branch"),
        (EXIT_NOT_REPO, NotFound, "last line"),
        (EXIT_NO_BASE, NotFound, "last line"),
        (1, GuestCommandFailed, "copying failed in dev: last line"),
    ],
)
def test_guest_errors_are_typed(status: int, error_type: type, text: str) -> None:
    error = guest_error(status, "first line\nlast line\n", vm="dev", dest="/root/repo",
                        stage="copying")
    assert type(error) is error_type
    assert text in error.message
    assert error.hint
