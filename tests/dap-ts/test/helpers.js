'use strict';
/**
 * Plumbing for the DebugClient conformance check: record the checkout example's traces for real,
 * find its lines in the source text, and run `python -m prodture.adapter` under Microsoft's
 * DebugClient.
 *
 * PRODTURE_PYTHON chooses the interpreter that runs the adapter (and the debuggee); default: the
 * repository's .venv/bin/python. PRODTURE_DAP_STDERR=1 echoes the adapter's stderr.
 */
const assert = require('assert');
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { DebugClient } = require('@vscode/debugadapter-testsupport');

const REPO = path.resolve(__dirname, '..', '..', '..');
const PYTHON = process.env.PRODTURE_PYTHON || path.join(REPO, '.venv', 'bin', 'python');
const CHECKOUT = path.join(REPO, 'examples', 'checkout');

/** How long to wait for an event or a process before calling it a hang (not a speed check). */
const HANG_MS = 60000;

/** The 1-based line of the one line of `file` containing `needle` (found in the source text). */
function lineOf(file, needle) {
  const found = fs.readFileSync(file, 'utf8').split('\n')
    .map((line, i) => (line.includes(needle) ? i + 1 : 0)).filter(Boolean);
  assert.strictEqual(found.length, 1, `${file}: ${found.length} lines contain ${JSON.stringify(needle)}`);
  return found[0];
}

const tempDirs = [];

function removeTempDirs() {
  while (tempDirs.length) fs.rmSync(tempDirs.pop(), { recursive: true, force: true });
}

/**
 * Copy the example to a temp dir and run its service for real (SQLite + HTTP gateway): four
 * orders, one failing ($0 charge). Returns {example, service, failing, lines}.
 */
function recordCheckout() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodture-dap-'));
  tempDirs.push(dir);
  const example = path.join(dir, 'checkout-example');
  fs.cpSync(CHECKOUT, example, {
    recursive: true,
    filter: (src) => !/(^|[\\/])(traces|var|__pycache__)$/.test(src),
  });
  const traces = path.join(dir, 'traces');
  const run = cp.spawnSync(PYTHON, ['run_orders.py', '--traces', traces], {
    cwd: example, encoding: 'utf8', timeout: 120000,
  });
  assert.strictEqual(run.status, 0, `run_orders.py failed:\n${run.stdout}\n${run.stderr}`);
  const probe = cp.spawnSync(PYTHON, ['-c', [
    'import glob, sys, prodture',
    'print(*[p for p in sorted(glob.glob(sys.argv[1] + "/*.prodtrace")) if not prodture.read_trace(p).outcome.ok])',
  ].join('\n'), traces], { cwd: example, encoding: 'utf8', timeout: 60000 });
  assert.strictEqual(probe.status, 0, probe.stderr);
  const failing = probe.stdout.trim().split(' ');
  assert.strictEqual(failing.length, 1, `expected exactly one failing order, got ${failing}`);
  const service = path.join(example, 'checkout', 'service.py');
  const lines = {
    try: lineOf(service, '    try:'),
    charge: lineOf(service, 'yield ChargeCard('),
  };
  return { example, service, failing: failing[0], lines };
}

/**
 * A DebugClient running `PYTHON -m prodture.adapter` (through a shell, in its own process group,
 * so that `stopClient` can end the adapter and its debuggee together).
 */
async function startClient() {
  const dc = new DebugClient(JSON.stringify(PYTHON), '-m prodture.adapter', 'prodture', {
    shell: true,
    detached: true,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  }, process.env.PRODTURE_DAP_STDERR === '1');
  dc.defaultTimeout = HANG_MS;
  await dc.start();
  return dc;
}

/** End the session as VS Code does (disconnect), then make sure nothing it started is left. */
async function stopClient(dc) {
  const shell = dc._adapterProcess;
  await Promise.race([dc.stop(), new Promise((resolve) => setTimeout(resolve, 5000))]);
  try { process.kill(-shell.pid, 'SIGKILL'); } catch { /* the group is already gone */ }
}

module.exports = { PYTHON, HANG_MS, lineOf, recordCheckout, removeTempDirs, startClient, stopClient };
