from __future__ import annotations

import io
import json

import pytest

from banger.cli.render import ProgressPrinter, print_fields, print_json, print_table
from banger.core.models import ProgressEvent, VMSpec


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_as_plain_lines_when_not_a_tty() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(stream)
    printer(ProgressEvent("spec", "spec: 2 vCPU"))
    printer(ProgressEvent("image", "I: extracting archives", 0.2))
    printer.done()
    assert stream.getvalue() == "spec: 2 vCPU\nI: extracting archives\n"


def test_progress_on_a_tty_overwrites_chatty_lines() -> None:
    stream = Terminal()
    printer = ProgressPrinter(stream)
    printer(ProgressEvent("spec", "spec: 2 vCPU"))
    printer(ProgressEvent("image", "step one"))
    printer(ProgressEvent("image", "step two"))
    printer.done()
    text = stream.getvalue()
    assert "spec: 2 vCPU\n" in text
    assert "step one\n" not in text
    assert text.endswith("\r\033[K")


def test_progress_quoting_a_guest_shows_its_escapes() -> None:
    stream = Terminal()
    printer = ProgressPrinter(stream)
    printer(ProgressEvent("warning", "warning: console says \x1b]0;title\x07"))
    assert stream.getvalue() == "\r\033[Kwarning: console says \\x1b]0;title\\x07\n"


def test_print_json_of_dataclasses(capsys: pytest.CaptureFixture[str]) -> None:
    print_json([VMSpec(1, 128, 1024)])
    assert json.loads(capsys.readouterr().out) == [
        {"vcpu": 1, "memory_mib": 128, "disk_size_bytes": 1024}
    ]


def test_table_and_fields_align(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["NAME", "IP"], [["a-long-name", "10.0.0.2"], ["b", "10.0.0.3"]])
    print_fields([("name", "dev"), ("memory", "1024 MiB")])
    assert capsys.readouterr().out.splitlines() == [
        "NAME         IP",
        "a-long-name  10.0.0.2",
        "b            10.0.0.3",
        "name:   dev",
        "memory: 1024 MiB",
    ]
