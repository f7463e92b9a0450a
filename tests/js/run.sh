#!/usr/bin/env bash
# Fidelity test: the official @huggingface/hub npm client against the Hub
# emulator. Installs the pinned client from package-lock.json when needed,
# then runs fidelity.mjs inside a fresh emulator + CDN stack whose tree
# listings are paginated every 3 entries.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

command -v node >/dev/null || { echo "run.sh: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "run.sh: npm is not installed" >&2; exit 1; }

# node_modules is current when it was installed from this exact lock file.
stamp="tests/js/node_modules/.hubfs-lock.sha256"
want="$(sha256sum tests/js/package-lock.json | cut -d' ' -f1)"
if [ ! -d tests/js/node_modules/@huggingface/hub ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
fi
# --install: only make node_modules current (for tests that run the client
# themselves, such as tests/integration/test_hfcache_js.py).
[ "${1:-}" = "--install" ] && exit 0

exec /usr/bin/python3 tests/harness/hubstack.py run --page-size 3 -- node tests/js/fidelity.mjs
