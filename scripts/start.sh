#!/usr/bin/env bash
# What `npm start` runs: install dependencies on a fresh clone, then serve the demo with Vite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '[start] %s\n' "$*" >&2; }
# shellcheck source=lib/ensure-node-modules.sh
source scripts/lib/ensure-node-modules.sh
ensure_node_modules
exec npx vite --host 127.0.0.1 --port "${PORT:-5173}" "$@"
