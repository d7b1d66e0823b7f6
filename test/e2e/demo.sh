#!/usr/bin/env bash
# `npm run demo`: on a fresh machine (as root), installs what the lab needs,
# builds, and runs test/e2e/demo.ts in a User-Mode Linux guest: pybal in a
# director with three real servers, a client and a BGP router. Ends by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash test/setup.sh demo
exec node dist/test/lab/run-in-guest.js --timeout-sec "${PYBAL_DEMO_TIMEOUT_SEC:-300}" -- node dist/test/e2e/demo.js
