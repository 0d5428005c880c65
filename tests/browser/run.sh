#!/bin/sh
# run.sh - runs page.test.js for ctest (tests/browser.cmake). Exit 77 (skipped) with a clear
# message when node, chromium or the npm packages are missing; `make test` installs them
# (tools/install-deps.sh test, then `npm ci` here).
set -u
here=$(cd "$(dirname "$0")" && pwd)
chromium=${GRU_CHROMIUM:-/usr/bin/chromium}
if ! command -v node >/dev/null 2>&1; then
    echo "SKIP: node is not installed (tools/install-deps.sh test installs nodejs and npm)"
    exit 77
fi
if [ ! -x "$chromium" ]; then
    echo "SKIP: $chromium is not installed (tools/install-deps.sh test installs chromium)"
    exit 77
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
    echo "SKIP: playwright-core is not installed: run 'npm ci' in tests/browser (make test does)"
    exit 77
fi
exec node "$here/page.test.js"
