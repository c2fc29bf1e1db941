"""PowerShell completion, written for banger rather than taken from click (whose PowerShell
support is recent and lets PowerShell fall back to file names when nothing matches).

The script hands the command line up to the cursor to `banger` in COMP_LINE, with
_BANGER_COMPLETE=powershell_complete; banger splits it like the other shells' requests and
answers one `type<TAB>value<TAB>help` line per candidate."""

from __future__ import annotations

import os
from typing import Any

from click.shell_completion import CompletionItem, ShellComplete, split_arg_string

SCRIPT = """\
# PowerShell completion for %(prog_name)s. Load it with:
#   %(prog_name)s completion powershell | Out-String | Invoke-Expression
Register-ArgumentCompleter -Native -CommandName %(prog_name)s -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    # The command line up to the cursor; past the end of the command means a new word.
    $text = $commandAst.Extent.Text
    $offset = $cursorPosition - $commandAst.Extent.StartOffset
    if ($offset -gt $text.Length) {
        $line = $text + ' '
    } else {
        $line = $text.Substring(0, [Math]::Max(0, $offset))
    }

    $saved = @($env:%(complete_var)s, $env:COMP_LINE)
    $env:%(complete_var)s = 'powershell_complete'
    $env:COMP_LINE = $line
    try {
        $response = @(& %(prog_name)s 2>$null)
    } finally {
        $env:%(complete_var)s = $saved[0]
        $env:COMP_LINE = $saved[1]
    }

    $paths = $false
    $results = @(foreach ($entry in $response) {
        $type, $value, $help = "$entry" -split "`t", 3
        if ($type -eq 'plain') {
            if (-not $help) { $help = $value }
            [System.Management.Automation.CompletionResult]::new(
                $value, $value, 'ParameterValue', $help)
        } elseif ($type -eq 'file' -or $type -eq 'dir') {
            $paths = $true
        }
    })
    if ($results.Count -gt 0) { return $results }
    # Returning nothing makes PowerShell complete file names: wanted for PATH arguments
    # only. Elsewhere an empty string stops it.
    if (-not $paths) { '' }
}
"""


class PowerShellComplete(ShellComplete):
    name = "powershell"
    source_template = SCRIPT

    def get_completion_args(self) -> tuple[list[str], str]:
        line = os.environ.get("COMP_LINE", "")
        words = split_arg_string(line)
        incomplete = words.pop() if words and not line[-1:].isspace() else ""
        return words[1:], incomplete

    def format_completion(self, item: CompletionItem[Any]) -> str:
        help_text = " ".join((item.help or "").split())
        return f"{item.type}\t{item.value}\t{help_text}"
