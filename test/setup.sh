#!/usr/bin/env bash
# Shared by `npm test` (test/run.sh) and `npm run demo` (test/e2e/demo.sh):
# installs what the lab needs on a fresh Debian machine (Debian packages for
# the lab, npm packages) and builds. Usage: bash test/setup.sh [log label]
set -euo pipefail
cd "$(dirname "$0")/.."

label=${1:-setup}
log() { printf '[%s] %s\n' "$label" "$*" >&2; }

# 1. Debian packages (the lab's kernel, routers, ipvsadm, ping, sshd).
mapfile -t wanted < <(grep -v '^\s*#' test/debian-packages.txt | grep -v '^\s*$')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "missing Debian packages (${missing[*]}); tests that need them will fail"
  fi
fi

# 2. npm packages, when node_modules is absent or older than the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages"
  npm ci --strict-allow-scripts --no-audit --no-fund
fi

# 3. Type-check and build: tsc into dist/, then the bundled command line
# (dist/cli/pybal.js, what the pybal executable runs; packaging/bundle-cli.ts).
log "building"
npm run -s build
