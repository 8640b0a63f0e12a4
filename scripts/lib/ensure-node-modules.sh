# Sourced by scripts/*.sh: installs node_modules on a fresh clone. Expects a log function.
ensure_node_modules() {
  [[ -d node_modules ]] && return 0
  log "node_modules is missing; installing dependencies..."
  # node-llama-cpp (the llama.cpp test oracle) ships prebuilt CPU binaries as optional packages;
  # its postinstall would otherwise try to download and compile llama.cpp when they do not load.
  export NODE_LLAMA_CPP_POSTINSTALL=skip NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
  # npm install, not npm ci: node-llama-cpp 3.22 lists optional binaries for other platforms
  # (win-*, mac-*) at versions the registry does not serve, so the lock file cannot hold them and
  # npm ci refuses it.
  npm install --no-audit --no-fund
}
