#!/usr/bin/env bash
# `npm test`: installs what the suite needs on a fresh Debian machine (Debian
# packages for the lab, npm packages), builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[npm test] %s\n' "$*" >&2; }

# 1-3. Debian and npm packages, then the build (shared with `npm run demo`).
bash test/setup.sh "npm test"

# 4. Every test: the host's (vitest project `unit`) and, at the same time,
# the lab's (project `lab`, *.lab.test.ts) inside User-Mode Linux guests with
# a real kernel (IPVS, namespaces, BIRD, GoBGP); see test/lab/README.md.
# PYBAL_LAB_GUESTS (default 2) guests share the lab files (vitest --shard);
# PYBAL_LAB=0 leaves the lab out. The JSON reports give the plain closing
# line CI reads, covering host and lab.
mkdir -p .lab-scratch
work=$(mktemp -d "$PWD/.lab-scratch/run.XXXXXX")
trap 'rm -rf "$work"' EXIT
guests=0
[[ "${PYBAL_LAB:-1}" == 0 ]] || guests=${PYBAL_LAB_GUESTS:-2}
lab_pids=()
for ((k = 1; k <= guests; k++)); do
  shard=()
  ((guests == 1)) || shard=("--shard=$k/$guests")
  node dist/test/lab/run-in-guest.js -- node node_modules/vitest/vitest.mjs run --passWithNoTests "${shard[@]}" \
    --reporter=default --reporter=json --outputFile.json="$work/lab-$k.json" "$@" >"$work/lab-$k.out" 2>&1 &
  lab_pids+=($!)
done
((guests == 0)) || log "started $guests lab guest(s); their output follows the host tests"
status=0
npx vitest run --passWithNoTests --reporter=default --reporter=json --outputFile.json="$work/host.json" "$@" || status=$?
for ((k = 1; k <= guests; k++)); do
  lab_status=0
  wait "${lab_pids[k - 1]}" || lab_status=$?
  log "lab guest $k of $guests:"
  cat "$work/lab-$k.out"
  ((lab_status == 0)) || status=$lab_status
done
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0;
  const failures = [];
  const firstLine = (text) => String(text ?? "").split("\n")[0].slice(0, 300);
  for (const path of process.argv.slice(1)) {
    if (!fs.existsSync(path)) { console.error(`[npm test] no test report ${path}: counted as one failure`); failed += 1; continue; }
    const r = JSON.parse(fs.readFileSync(path, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
    for (const file of r.testResults ?? []) {
      const where = file.name.replace(process.cwd() + "/", "");
      for (const t of file.assertionResults ?? []) {
        if (t.status !== "failed") continue;
        failures.push(`FAILED ${where} > ${t.fullName}: ${firstLine((t.failureMessages ?? [])[0])}`);
      }
      if ((file.assertionResults ?? []).length === 0 && file.status === "failed") {
        failures.push(`FAILED ${where}: ${firstLine(file.message)}`);
      }
    }
  }
  // Named again here, next to the closing line, so that a CI log cut to its
  // last lines still says which test failed and why.
  for (const line of failures) console.log(line);
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
' "$work/host.json" $(for ((k = 1; k <= guests; k++)); do echo "$work/lab-$k.json"; done)
exit "$status"
