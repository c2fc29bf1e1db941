"""`banger completion SHELL`: print the script that wires banger into a shell's completion.

Each script only forwards the command line to `banger` (with _BANGER_COMPLETE set) and
turns the answer into the shell's candidates; banger.cli.complete does the work."""

from __future__ import annotations

import sys

from banger.cli.context import Context
from banger.cli.spec import Arg, Command

SHELLS = ("bash", "zsh", "fish", "powershell")
COMPLETE_VAR = "_BANGER_COMPLETE"

BASH = """\
# bash completion for banger; see `banger completion --help`.
_banger_completion() {
    local IFS=$'\\n' entry
    COMPREPLY=()
    for entry in $(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD="$COMP_CWORD" \\
            _BANGER_COMPLETE=bash_complete "$1" 2>/dev/null); do
        case ${entry%%,*} in
            plain) COMPREPLY+=("${entry#*,}") ;;
            dir) compopt -o dirnames 2>/dev/null ;;
            file) compopt -o default 2>/dev/null ;;
        esac
    done
    return 0
}
complete -o nosort -F _banger_completion banger
"""

ZSH = """\
#compdef banger
# zsh completion for banger; see `banger completion --help`.
_banger_completion() {
    local -a answer plain described
    local i kind value help
    answer=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT - 1)) \\
        _BANGER_COMPLETE=zsh_complete banger 2>/dev/null)}")
    # Three lines per candidate: kind, value, help ("_" for none).
    for (( i = 1; i + 2 <= ${#answer}; i += 3 )); do
        kind=${answer[i]} value=${answer[i + 1]} help=${answer[i + 2]}
        case $kind in
            plain)
                if [[ $help == _ ]]; then
                    plain+=("$value")
                else
                    described+=("${value//:/\\\\:}:$help")
                fi ;;
            dir) _path_files -/; return ;;
            file) _path_files; return ;;
        esac
    done
    (( ${#described} )) && _describe -V unsorted described -U
    (( ${#plain} )) && compadd -U -V unsorted -a plain
    return 0
}
# Autoloaded from $fpath this file is the body of _banger: complete right away. Sourced,
# it registers the function with compinit's compdef.
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _banger_completion "$@"
else
    compdef _banger_completion banger
fi
"""

FISH = """\
# fish completion for banger; see `banger completion --help`.
function __banger_completion
    set -l answer (env _BANGER_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) \\
        COMP_CWORD=(commandline -ct) banger 2>/dev/null)
    for entry in $answer
        set -l parts (string split -m 1 -- , $entry)
        switch $parts[1]
            case plain
                printf '%s\\n' $parts[2]
            case dir
                __fish_complete_directories (commandline -ct)
            case file
                __fish_complete_path (commandline -ct)
        end
    end
end
complete --no-files --command banger --arguments '(__banger_completion)'
"""

POWERSHELL = """\
# PowerShell completion for banger. Load it with:
#   banger completion powershell | Out-String | Invoke-Expression
Register-ArgumentCompleter -Native -CommandName banger -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    # The command line up to the cursor; past the end of the command means a new word.
    $text = $commandAst.Extent.Text
    $offset = $cursorPosition - $commandAst.Extent.StartOffset
    if ($offset -gt $text.Length) {
        $line = $text + ' '
    } else {
        $line = $text.Substring(0, [Math]::Max(0, $offset))
    }

    $saved = @($env:_BANGER_COMPLETE, $env:COMP_LINE)
    $env:_BANGER_COMPLETE = 'powershell_complete'
    $env:COMP_LINE = $line
    try {
        $response = @(& banger 2>$null)
    } finally {
        $env:_BANGER_COMPLETE = $saved[0]
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

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH, "powershell": POWERSHELL}

RECIPES = """\
Load it once per session, or install it where the shell looks for it:

bash (needs the bash-completion package for the directory below):
  source <(banger completion bash)
  banger completion bash > ~/.local/share/bash-completion/completions/banger
  banger completion bash | sudo tee /etc/bash_completion.d/banger   # all users

zsh (after `autoload -Uz compinit && compinit` in ~/.zshrc):
  source <(banger completion zsh)
  banger completion zsh > ~/.zfunc/_banger   # with fpath=(~/.zfunc $fpath) before compinit

fish:
  banger completion fish | source
  banger completion fish > ~/.config/fish/completions/banger.fish

PowerShell:
  banger completion powershell | Out-String | Invoke-Expression
  banger completion powershell >> $PROFILE
"""


def script(shell: str) -> str:
    return SCRIPTS.get(shell, "")


def _completion(ctx: Context, shell: str) -> None:
    """Print the completion script for SHELL.

    It completes commands, options and the names of your VMs, images and kernels (asked
    from a running bangerd; with the daemon down, names complete to nothing).
    """
    sys.stdout.write(script(shell))


completion = Command(
    "completion", _completion, [Arg("shell", choices=SHELLS)], epilog=RECIPES
)
