"""`[[file_sync]]` in config: where entries may go, and errors that name the entry."""

from __future__ import annotations

import pytest

from banger.core.config import FileSync, parse_config
from banger.core.errors import ConfigError


def test_entries_parse_with_optional_mode() -> None:
    config = parse_config(
        '[[file_sync]]\nhost = "~/.aws"\nguest = "~/.aws"\n'
        '[[file_sync]]\nhost = "/opt/tool"\nguest = "/root/bin/tool"\nmode = "0755"\n'
    )
    assert config.file_sync == [
        FileSync(host="~/.aws", guest="~/.aws"),
        FileSync(host="/opt/tool", guest="/root/bin/tool", mode="0755"),
    ]
    assert [e.relative_guest_path for e in config.file_sync] == [".aws", "bin/tool"]
    assert [e.file_mode for e in config.file_sync] == [None, 0o755]
    assert parse_config("").file_sync == []


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('host = "~/.aws"\nguest = "/etc/aws"', "guest path '/etc/aws' must be under ~/ or /root/"),
        ('host = "~/.aws"\nguest = "aws"', "must be under ~/ or /root/"),
        ('host = "~/.aws"\nguest = "~/../etc/passwd"', "must name a file or directory below"),
        ('host = "~/.aws"\nguest = "/root/"', "must name a file or directory below"),
        ('host = "~/k"\nguest = "~/.ssh/authorized_keys"', "managed by banger"),
        ('host = "~/k"\nguest = "~/.banger/x"', "managed by banger"),
        ('host = "relative/path"\nguest = "~/x"', "must be absolute or start with ~"),
        ('host = "~/x"\nguest = "~/x"\nmode = "rwx"', "not an octal file mode"),
        ('host = "~/x"\nguest = "~/x"\nmode = "0999"', "not an octal file mode"),
    ],
)
def test_bad_entries_are_config_errors_naming_the_entry(entry: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"[[file_sync]]\n{entry}\n", source="config.toml")
    message = info.value.message
    assert message.startswith("config.toml: bad value for config key 'file_sync.0': entry host")
    assert problem in message
    assert "\n" not in message


def test_unknown_and_missing_keys_in_an_entry() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'file_sync\.0\.owner'"):
        parse_config('[[file_sync]]\nhost = "~/x"\nguest = "~/x"\nowner = "me"\n')
    with pytest.raises(ConfigError, match=r"'file_sync\.0\.guest'"):
        parse_config('[[file_sync]]\nhost = "~/x"\n')
