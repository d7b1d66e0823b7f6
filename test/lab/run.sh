#!/usr/bin/env bash
# Runs lab tests (vitest project `lab`) inside one User-Mode Linux guest.
#   bash test/lab/run.sh                              # every *.lab.test.ts
#   bash test/lab/run.sh test/lab/bgp.lab.test.ts     # some files (any vitest arguments)
#   PYBAL_LAB_KEEP=1 bash test/lab/run.sh ...         # keep .lab-scratch/guest-*/ (logs, configs)
#   PYBAL_LAB_TIMEOUT_SEC=600 PYBAL_LAB_MEM_MB=3072 bash test/lab/run.sh
# Builds first (real servers and the daemon run from dist/).
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run -s build
exec node dist/test/lab/run-in-guest.js -- node node_modules/vitest/vitest.mjs run "$@"
