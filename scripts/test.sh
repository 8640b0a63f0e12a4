#!/usr/bin/env bash
# What `npm test` runs: make sure Chromium and node_modules are there, then typecheck and run every
# vitest suite. Browser tests drive Chromium (SwiftShader WebGPU) through playwright-core;
# tests/helpers/paths.ts reads CHROMIUM_PATH, defaulting to /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[test] %s\n' "$*" >&2; }
# shellcheck source=lib/ensure-node-modules.sh
source scripts/lib/ensure-node-modules.sh

ensure_chromium() {
  if [[ -n "${CHROMIUM_PATH:-}" ]]; then
    if [[ -x "$CHROMIUM_PATH" ]]; then return 0; fi
    log "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file."
    exit 1
  fi
  export CHROMIUM_PATH=/usr/bin/chromium
  if [[ -x "$CHROMIUM_PATH" ]]; then return 0; fi
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    log "Chromium is missing; installing the Debian package (apt-get install chromium)..."
    local aptlog
    aptlog="$(mktemp)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >"$aptlog" 2>&1; then
      tail -n 20 "$aptlog" >&2
      log "apt-get could not install chromium (log above)."
      exit 1
    fi
    rm -f "$aptlog"
    [[ -x "$CHROMIUM_PATH" ]] && return 0
  fi
  log "Chromium not found at /usr/bin/chromium. Install it (Debian/Ubuntu: sudo apt-get install chromium)"
  log "or point CHROMIUM_PATH at a Chromium/Chrome binary, e.g. CHROMIUM_PATH=/path/to/chrome npm test"
  exit 1
}

ensure_chromium
ensure_node_modules

if [[ ! -d ../shared/models ]]; then
  log "warning: ../shared/models is not beside the repository; tests that need model files will fail."
fi

log "typecheck: tsc --noEmit -p ."
npx tsc --noEmit -p .

log "tests: vitest run"
npx vitest run "$@"
