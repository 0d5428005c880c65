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
# playwright-core's own floor (its "engines" in package-lock.json): it refuses older Node.js at
# start. Debian 12's nodejs is 18, so on a stock Debian 12 this test skips; Node.js 20+ runs it.
need=$(node -p "(require('$here/package-lock.json').packages['node_modules/playwright-core'].engines || {}).node || ''" 2>/dev/null |
       sed -n 's/^>=[[:space:]]*\([0-9][0-9]*\).*/\1/p')
have=$(node -p 'process.versions.node.split(".")[0]')
if [ -n "$need" ] && [ "$have" -lt "$need" ]; then
    echo "SKIP: node $(node --version) is older than playwright-core needs (Node.js >= $need; Debian 12 ships 18)"
    exit 77
fi
exec node "$here/page.test.js"
