"""The client side of `POST /v1/vms/{name}/exec` and of a process's output: NDJSON output
lines, decoded."""

from __future__ import annotations

import base64

from banger.core.errors import DaemonUnavailable, error_from_dict

TYPE_CHECKING = False  # not typing's: `banger vm exec` starts without it (see core/xdg.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from banger.client import Client
    from banger.client.transport import Response

    OnOutput = Callable[[bytes], None]


def run_exec(
    client: Client, name: str, body: dict[str, Any], on_stdout: OnOutput, on_stderr: OnOutput,
) -> dict[str, Any]:
    """`body`: an ExecVM's `body()`, or those keys built by hand (`banger vm run`)."""
    from banger.client import _q

    response = client._open("POST", f"/v1/vms/{_q(name)}/exec", body, None)
    return read_output(response, on_stdout, on_stderr, lambda _: None, "exec")


def read_output(
    response: Response, on_stdout: OnOutput, on_stderr: OnOutput,
    on_dropped: Callable[[int], None], what: str,
    on_started: Callable[[int], None] = lambda _: None,
) -> dict[str, Any]:
    """Hand a process's NDJSON output (an exec's or an attach's) to the callbacks until its
    result, which is returned; the response is closed either way. A stream that started
    the process first names it: `on_started` gets its pid."""
    from banger.client import _json_body, _ndjson

    try:
        if response.status >= 400:
            raise error_from_dict(_json_body(response)["error"])
        for item in _ndjson(response):
            if "stdout" in item:
                on_stdout(base64.b64decode(item["stdout"]))
            elif "stderr" in item:
                on_stderr(base64.b64decode(item["stderr"]))
            elif "dropped" in item:
                on_dropped(int(item["dropped"]))
            elif "process" in item:
                on_started(int(item["process"]["pid"]))
            elif "error" in item:
                raise error_from_dict(item["error"])
            elif "result" in item:
                result: dict[str, Any] = item["result"]
                return result
    finally:
        response.close()
    raise DaemonUnavailable(f"bangerd closed the {what} stream early", hint="see bangerd.log")
