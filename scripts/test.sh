#!/bin/sh
# The whole test suite: lint, types, import layering, unit tests and (as root) the
# end-to-end tests that boot real guests inside a network namespace.
# Dependencies come from requirements/test.txt (locked, with hashes); BANGER_DEPS=latest
# installs the newest versions pyproject.toml allows instead, to see a refresh's breakage
# before scripts/lock.sh commits it.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
"$here/scripts/system-packages.sh" test
venv=${BANGER_TEST_VENV:-$here/.venv}
[ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv"
if [ "${BANGER_DEPS:-locked}" = latest ]; then
    "$venv/bin/pip" install -q --upgrade --upgrade-strategy eager -e ".[test]"
else
    "$venv/bin/pip" install -q --require-hashes -r requirements/test.txt
    "$venv/bin/pip" install -q --no-deps --no-build-isolation -e .
fi
export PATH="$venv/bin:$PATH"
ruff check src tests bench
mypy
lint-imports
if [ "$(id -u)" = 0 ]; then
    export BANGER_REQUIRE_E2E=1
fi
exec pytest -p no:cacheprovider -q -ra --timeout=900 "$@"
