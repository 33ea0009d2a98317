#!/usr/bin/env bash
# End-to-end test of the extension in a real VS Code (code-server + Debian's Chromium + playwright-core).
#
#   scripts/vscode-e2e/run.sh            # install (cached), build the .vsix, run the walk
#   scripts/vscode-e2e/run.sh --serve    # same set-up, but keep code-server running for a person
#
# Environment:
#   PRODTURE_PYTHON   interpreter with prodture[debug] (default: .venv/bin/python of the repo)
#   PRODTURE_CACHE    cache folder for node@24, code-server, playwright-core (default ~/.cache/prodture)
#   E2E_ARTIFACTS     where screenshots and logs go (default: artifacts/vscode-e2e)
#   E2E_WORKSPACE     folder to open (default: examples/checkout)
#   E2E_WORKSPACE_TRUST  false: Workspace Trust off (every folder trusted), for walks about other things
#   E2E_FRESH_VENV    1: prodture.python names a new virtual environment without prodture (the
#                     extension's first run; walk-firstrun.cjs installs prodture into it from the viewer)
# Prints the measured figures as `name: value` lines. Everything it starts runs in process groups
# that are killed on exit; the /tmp/vscode-ipc-*.sock files code-server creates are removed.
# The folder opens in Restricted Mode (Workspace Trust on, no start-up prompt): the walk checks
# what is off there, then trusts the folder. The walk edits the example's handler for a while;
# the handler is put back on exit whatever happens.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODE="${1:-test}"
ARTIFACTS="${E2E_ARTIFACTS:-$ROOT/artifacts/vscode-e2e}"
[ "$MODE" = "--serve" ] && ARTIFACTS="$ROOT/artifacts/vscode-serve"   # keep the test's screenshots
WORKSPACE="${E2E_WORKSPACE:-$ROOT/examples/checkout}"
PY="${PRODTURE_PYTHON:-$ROOT/.venv/bin/python}"

log() { echo "[vscode-e2e] $*" >&2; }

# --- prerequisites ----------------------------------------------------------------------------
INSTALLED="$(bash "$ROOT/scripts/vscode-e2e/install.sh")" || { log "installing the test tools failed"; exit 1; }
eval "$INSTALLED"
[ -x "$PY" ] || { log "no Python interpreter at $PY: create the venv (python3 -m venv .venv && .venv/bin/pip install -e '.[debug]') or set PRODTURE_PYTHON"; exit 2; }
"$PY" -c 'import prodture' 2>/dev/null || { log "prodture is not importable from $PY: run $PY -m pip install -e '.[debug]'"; exit 2; }

# --- build the .vsix --------------------------------------------------------------------------
cd "$ROOT"
if ! [ -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --loglevel=error --no-audit --no-fund >/dev/null
fi
log "building the .vsix"
PKG_LOG="$(mktemp /tmp/prodture-e2e-package.XXXXXX)"
npm run --silent package >"$PKG_LOG" 2>&1 || { cat "$PKG_LOG" >&2; rm -f "$PKG_LOG"; exit 1; }
rm -f "$PKG_LOG"
VSIX="$ROOT/vscode-extension/prodture.vsix"
VSIX_BYTES=$(stat -c %s "$VSIX")

# --- traces of the example --------------------------------------------------------------------
if ! ls "$WORKSPACE"/traces/*.prodtrace >/dev/null 2>&1 && [ -f "$WORKSPACE/run_orders.py" ]; then
  log "recording the example's traces"
  "$PY" "$WORKSPACE/run_orders.py" >&2
fi

# a 100,000-effect trace for the viewer's speed check (in var/, which git ignores)
BIG_TRACE=""
if [ "${E2E_BIG_TRACE:-1}" != "0" ] && [ -d "$WORKSPACE/traces" ]; then
  BIG_TRACE="$("$PY" "$ROOT/tests/e2e-vscode/make_big_trace.py" "$WORKSPACE/var/e2e-big" "${E2E_BIG_TRACE_EFFECTS:-100000}")"
fi

# --- a fresh VS Code profile ------------------------------------------------------------------
rm -rf "$ARTIFACTS"; mkdir -p "$ARTIFACTS"
TMP="$(mktemp -d /tmp/prodture-e2e.XXXXXX)"
USER_DATA="$TMP/user-data"; EXT_DIR="$TMP/extensions"
mkdir -p "$USER_DATA/User" "$EXT_DIR"
SOCKS_BEFORE="$TMP/socks-before"; ls /tmp/vscode-ipc-*.sock 2>/dev/null | sort >"$SOCKS_BEFORE" || true

# the walk's Restricted Mode tripwire (a module that writes a marker when imported) and the
# handler it edits, put back on exit
HANDLER="$WORKSPACE/checkout/service.py"
MARKER_MODULE="$WORKSPACE/checkout/_e2e_import_marker.py"
[ -f "$HANDLER" ] && cp -p "$HANDLER" "$TMP/handler.orig"

CS_PGID=""; TEST_PGID=""
cleanup() {
  local rc=$?
  set +e # every step of the clean-up runs, and the walk's status is what the script returns
  for pg in "$TEST_PGID" "$CS_PGID"; do
    [ -n "$pg" ] || continue
    kill -TERM -- "-$pg" 2>/dev/null || true
  done
  for pg in "$TEST_PGID" "$CS_PGID"; do
    [ -n "$pg" ] || continue
    for _ in $(seq 1 30); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pg" 2>/dev/null || true
  done
  if [ -f "$TMP/handler.orig" ] && ! cmp -s "$TMP/handler.orig" "$HANDLER"; then
    cp -p "$TMP/handler.orig" "$HANDLER"; log "put back $HANDLER"
  fi
  rm -f "$MARKER_MODULE"
  # the sockets code-server created
  { ls /tmp/vscode-ipc-*.sock 2>/dev/null || true; } | sort | comm -13 "$SOCKS_BEFORE" - | xargs -r rm -f
  [ -f "$TMP/code-server.log" ] && cp "$TMP/code-server.log" "$ARTIFACTS/" 2>/dev/null || true
  # VS Code's logs, output channels included (the "Prodture" channel shows the servers' stderr)
  [ -d "$USER_DATA/logs" ] && cp -r "$USER_DATA/logs" "$ARTIFACTS/vscode-logs" 2>/dev/null || true
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the interpreter VS Code is told to use: the repository's, or a new one that lacks prodture
VIEWER_PY="$PY"
FRESH_PY=""
if [ "${E2E_FRESH_VENV:-0}" = "1" ]; then
  log "creating a virtual environment without prodture for the first-run walk"
  "$PY" -m venv "$TMP/fresh-venv"
  FRESH_PY="$TMP/fresh-venv/bin/python"
  if "$FRESH_PY" -c 'import prodture' 2>/dev/null; then log "$FRESH_PY can import prodture: not a first run"; exit 1; fi
  VIEWER_PY="$FRESH_PY"
fi

cat >"$USER_DATA/User/settings.json" <<JSON
{
  "prodture.python": "$VIEWER_PY",
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "workbench.welcomePage.walkthroughs.openOnInstall": false,
  "workbench.enableExperiments": false,
  "security.workspace.trust.enabled": ${E2E_WORKSPACE_TRUST:-true},
  "security.workspace.trust.startupPrompt": "never",
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.ignoreRecommendations": true,
  "chat.disableAIFeatures": true,
  "window.restoreWindows": "none",
  "files.hotExit": "off",
  "editor.minimap.enabled": false,
  "debug.toolBarLocation": "floating",
  "python.languageServer": "None",
  "git.enabled": false,
  "git.openRepositoryInParentFolders": "never"
}
JSON

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
cat >"$TMP/config.yaml" <<YAML
bind-addr: 127.0.0.1:$PORT
auth: none
cert: false
YAML
CS=("$NODE24_BIN" "$CODE_SERVER_ENTRY" --config "$TMP/config.yaml" --user-data-dir "$USER_DATA" --extensions-dir "$EXT_DIR" --disable-telemetry --disable-update-check)

log "installing $VSIX ($VSIX_BYTES bytes) into a fresh extensions folder"
"${CS[@]}" --install-extension "$VSIX" >"$TMP/install-ext.log" 2>&1 || { cat "$TMP/install-ext.log" >&2; exit 1; }

log "starting code-server on 127.0.0.1:$PORT with $WORKSPACE"
setsid "${CS[@]}" --disable-getting-started-override "$WORKSPACE" >"$TMP/code-server.log" 2>&1 &
CS_PGID=$!
healthy() { node -e 'require("http").get(process.argv[1], (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on("error", () => process.exit(1))' "http://127.0.0.1:$PORT/healthz"; }
for _ in $(seq 1 150); do
  healthy && break
  kill -0 "$CS_PGID" 2>/dev/null || { cat "$TMP/code-server.log" >&2; log "code-server exited"; exit 1; }
  sleep 0.2
done
healthy || { log "code-server did not answer /healthz in 30 s"; exit 1; }

URL="http://127.0.0.1:$PORT/?folder=$(printf %s "$WORKSPACE" | "$PY" -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.stdin.read()))')"
if [ "$MODE" = "--serve" ]; then
  log "serving $URL — Ctrl-C to stop"
  wait "$CS_PGID"
  exit 0
fi

export E2E_URL="$URL" E2E_WORKSPACE="$WORKSPACE" E2E_ARTIFACTS="$ARTIFACTS" E2E_CHROMIUM="$CHROMIUM" \
  E2E_PLAYWRIGHT="$PLAYWRIGHT_NODE_PATH/playwright-core" E2E_VSIX_BYTES="$VSIX_BYTES" E2E_PYTHON="$PY" \
  E2E_CODE_SERVER_LOG="$TMP/code-server.log" E2E_USER_DATA="$USER_DATA" E2E_BIG_TRACE="$BIG_TRACE" \
  E2E_MARKER_MODULE="$MARKER_MODULE" E2E_IMPORT_MARKER="$TMP/imported.marker" E2E_FRESH_PYTHON="$FRESH_PY"
# E2E_WALKS: which walks to run, in order, in the same VS Code (default: walk.cjs; make test-vscode
# runs walk-store.cjs and walk-eventstore.cjs in VS Codes of their own).
RC=0
for walk in ${E2E_WALKS:-walk.cjs}; do
  E2E_STORE_DIR="$TMP/trace-store" setsid node "$ROOT/tests/e2e-vscode/$walk" &
  TEST_PGID=$!
  set +e
  wait "$TEST_PGID"
  rc=$?
  set -e
  TEST_PGID=""
  [ "$RC" -ne 0 ] || RC=$rc
done
exit $RC
