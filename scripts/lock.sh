#!/bin/sh
# Refresh the lock files: re-resolve requirements/runtime.txt (what install.sh installs) and
# requirements/test.txt (what test.sh installs) to the newest versions that pyproject.toml
# allows, with hashes; then run the whole test suite against them. Commit the two files
# only when it passes. (`BANGER_DEPS=latest ./scripts/test.sh` tries the newest versions
# without touching the locks.)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
/usr/bin/python3 -m venv "$tools"
"$tools/bin/pip" install -q pip-tools
compile() {
    "$tools/bin/pip-compile" -q --upgrade --generate-hashes --allow-unsafe --strip-extras \
        --no-emit-index-url --no-emit-find-links --no-emit-trusted-host "$@"
}
compile -o requirements/runtime.txt pyproject.toml requirements/build.in
compile --extra test -o requirements/test.txt pyproject.toml requirements/build.in
venv=$(mktemp -d)
trap 'rm -rf "$tools" "$venv"' EXIT
BANGER_TEST_VENV=$venv "$here/scripts/test.sh"
