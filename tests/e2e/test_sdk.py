"""The Python SDK against real guests: every example of docs/sdk.md, run as it is written,
and the claims the examples only show (20 concurrent execs on one VM, unmixed)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from banger.client import Client
from banger.core.paths import paths_from_env
from banger.sdk.sandbox import Sandbox
from tests.e2e.conftest import BangerEnv

pytestmark = pytest.mark.e2e
GUIDE = Path(__file__).parents[2] / "docs" / "sdk.md"
EXAMPLES = re.findall(r"^```python\n(.*?)^```$", GUIDE.read_text(), re.S | re.M)


def test_the_guide_has_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.fixture(scope="module")
def env(second_banger_module: Callable[[str], BangerEnv]) -> BangerEnv:
    """An installation of its own with a longer boot timeout: these tests boot a VM per
    example, on a host that other test runs may keep busy."""
    return second_banger_module("boot_timeout = 900\n")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a git checkout ./repo, where the guide's examples run."""
    workdir = tmp_path_factory.mktemp("sdk")
    repo = workdir / "repo"
    repo.mkdir()
    (repo / "README").write_text("a repository\n")
    (repo / ".gitignore").write_text("*.o\n")
    (repo / "ignored.o").write_text("not copied\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    return workdir


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example{n}" for n in range(len(EXAMPLES))])
def test_guide_example_runs(env: BangerEnv, workdir: Path, example: str) -> None:
    proc = subprocess.run(
        env.netns.exec_argv([sys.executable, "-c", example]), env=env.env, cwd=workdir,
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert env.json("vm", "list") == [], "an example left a VM behind"


@pytest.fixture(scope="module")
def sandbox(env: BangerEnv) -> Iterator[Sandbox]:
    client = Client(paths_from_env(env.env), autostart=False)
    with Sandbox.create(image="debian-bookworm", name="sdk", client=client) as sb:
        yield sb


def test_twenty_concurrent_execs_complete_unmixed(sandbox: Sandbox) -> None:
    outputs: dict[int, tuple[str, str, int | None]] = {}

    def run(n: int) -> None:
        result = sandbox.exec(
            f"for i in $(seq 300); do echo out-{n}-$i; echo err-{n}-$i >&2; done; exit {n}"
        )
        outputs[n] = (result.stdout, result.stderr, result.exit_code)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert sorted(outputs) == list(range(20))
    for n, (stdout, stderr, code) in outputs.items():
        assert stdout.splitlines() == [f"out-{n}-{i}" for i in range(1, 301)]
        assert stderr.splitlines() == [f"err-{n}-{i}" for i in range(1, 301)]
        assert code == n


def test_a_missing_command_and_a_missing_file(sandbox: Sandbox) -> None:
    from banger.core.errors import GuestPathNotFound

    result = sandbox.exec("no-such-command")
    assert result.exit_code == 127 and "not found" in result.stderr
    with pytest.raises(GuestPathNotFound) as raised:
        sandbox.files.read("/root/no-such-file")
    assert "/root/no-such-file" in raised.value.message
    assert "DIRECTORY" in raised.value.hint


def test_background_process_is_listed_killed_and_gone(sandbox: Sandbox) -> None:
    p = sandbox.exec("sleep 300", background=True, tag="sleeper")
    assert p.running
    assert [q.pid for q in sandbox.processes() if q.tag == "sleeper"] == [p.pid]
    p.kill()
    result = p.wait()
    assert (result.exit_code, result.signal) == (None, 9)
    assert sandbox.exec(["sh", "-c", f"kill -0 {p.pid}"]).exit_code != 0  # no such process


def test_background_output_is_kept_for_a_later_reader(sandbox: Sandbox) -> None:
    p = sandbox.exec("echo early; sleep 1; echo late >&2; exit 4", background=True)
    lines: list[str] = []
    result = p.wait(on_stdout=lines.append)
    assert (result.stdout, result.stderr, result.exit_code, lines) == (
        "early\n", "late\n", 4, ["early"]
    )
