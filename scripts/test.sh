#!/bin/sh
# The whole test suite: lint, types, import layering, unit tests and (as root) the
# end-to-end tests that boot real guests inside a network namespace.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
"$here/scripts/system-packages.sh" test
venv=${BANGER_TEST_VENV:-$here/.venv}
[ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install -q -e ".[test]"
export PATH="$venv/bin:$PATH"
ruff check src tests bench
mypy
lint-imports
if [ "$(id -u)" = 0 ]; then
    export BANGER_REQUIRE_E2E=1
fi
exec pytest -p no:cacheprovider -q -ra --timeout=900 "$@"
