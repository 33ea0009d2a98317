'use strict';
/**
 * Shared plumbing for the DAP tests: record the checkout example's traces, start
 * `python -m prodture.adapter` under Microsoft's DebugClient, follow its events, and stop
 * every process it started.
 *
 * PRODTURE_PYTHON chooses the interpreter that runs the adapter (and, by default, the
 * debuggee); default: the repository's .venv/bin/python. PRODTURE_DAP_STDERR=1 echoes the
 * adapter's stderr.
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

/** Lines of examples/checkout/checkout/service.py the tests rely on (checked in `recordCheckout`). */
const LINES = {
  loadCart: 14, // cart = yield LoadCart(...)
  subtotal: 15, // subtotal = cart.subtotal()
  promo: 16, // total = yield ApplyPromo(...)
  charge: 18, // charge = yield ChargeCard(..., amount=total)
};

/** How long to wait for an event or a process before calling it a hang (not a speed check). */
const HANG_MS = 30000;

const tempDirs = [];

/** A fresh temp folder, removed by `removeTempDirs` (each test file calls it in `after`). */
function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function removeTempDirs() {
  while (tempDirs.length) fs.rmSync(tempDirs.pop(), { recursive: true, force: true });
}

/** A private copy of the checkout example (tests may edit it); returns its folder. */
function copyCheckout(into) {
  const target = path.join(into, 'checkout-example');
  fs.cpSync(CHECKOUT, target, {
    recursive: true,
    filter: (src) => !/(^|[\\/])(traces|var|__pycache__)$/.test(src),
  });
  return target;
}

/**
 * Copy the example to a temp dir and run its service for real (SQLite + HTTP gateway):
 * four orders, one failing ($0 charge). Returns {dir, example, service, failing, ok}.
 */
function recordCheckout() {
  const dir = tempDir('prodture-dap-');
  const example = copyCheckout(dir);
  const traces = path.join(dir, 'traces');
  const run = cp.spawnSync(PYTHON, ['run_orders.py', '--traces', traces], {
    cwd: example, encoding: 'utf8', timeout: 120000,
  });
  assert.strictEqual(run.status, 0, `run_orders.py failed:\n${run.stdout}\n${run.stderr}`);
  const probe = cp.spawnSync(PYTHON, ['-c', [
    'import glob, json, sys, prodture',
    'paths = sorted(glob.glob(sys.argv[1] + "/*.prodtrace"))',
    'print(json.dumps({p: prodture.read_trace(p).outcome.ok for p in paths}))',
  ].join('\n'), traces], { cwd: example, encoding: 'utf8', timeout: 60000 });
  assert.strictEqual(probe.status, 0, probe.stderr);
  const outcomes = JSON.parse(probe.stdout);
  const failing = Object.keys(outcomes).filter((p) => !outcomes[p]);
  const ok = Object.keys(outcomes).filter((p) => outcomes[p]);
  assert.strictEqual(failing.length, 1, `expected exactly one failing order, got ${JSON.stringify(outcomes)}`);
  const service = path.join(example, 'checkout', 'service.py');
  const source = fs.readFileSync(service, 'utf8').split('\n');
  assert.match(source[LINES.charge - 1], /yield ChargeCard\(/, 'service.py changed: fix LINES in helpers.js');
  assert.match(source[LINES.promo - 1], /yield ApplyPromo\(/, 'service.py changed: fix LINES in helpers.js');
  assert.match(source[LINES.loadCart - 1], /yield LoadCart\(/, 'service.py changed: fix LINES in helpers.js');
  return { dir, example, service, failing: failing[0], ok: ok[0] };
}

// ---------------------------------------------------------------------------------------------
// processes

function parentMap() {
  const parents = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(entry), Number(fields[1]));
    } catch {
      // the process ended meanwhile
    }
  }
  return parents;
}

/** Pids of the live descendants of `pid` (children, grandchildren, ...). */
function descendants(pid) {
  const parents = parentMap();
  const found = [];
  let frontier = [pid];
  while (frontier.length) {
    const next = [];
    for (const [child, parent] of parents) {
      if (frontier.includes(parent)) next.push(child);
    }
    found.push(...next);
    frontier = next;
  }
  return found;
}

/** Direct children of `pid`. */
function childrenOf(pid) {
  return [...parentMap()].filter(([, parent]) => parent === pid).map(([child]) => child);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves true once every pid has ended, false if some are still alive after `ms`. */
async function waitGone(pids, ms = HANG_MS) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!pids.some(alive)) return true;
    await sleep(50);
  }
  return !pids.some(alive);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// the adapter under Microsoft's DebugClient

const EVENTS = ['stopped', 'prodture/position', 'terminated', 'exited', 'output', 'initialized', 'continued'];

/**
 * A DebugClient running `PYTHON -m prodture.adapter` (spawned through a shell, in its own
 * process group so that `stop()` can end the adapter, the debuggee and anything they started).
 */
class Session {
  constructor() {
    this.dc = new DebugClient(JSON.stringify(PYTHON), '-m prodture.adapter', 'prodture', {
      shell: true,
      detached: true,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    }, process.env.PRODTURE_DAP_STDERR === '1');
    this.dc.defaultTimeout = HANG_MS;
    this.log = Object.fromEntries(EVENTS.map((name) => [name, []]));
    this.waiters = [];
    this.stderr = '';
    for (const name of EVENTS) {
      this.dc.on(name, (event) => {
        this.log[name].push(event);
        this._wake();
      });
    }
  }

  async start() {
    await this.dc.start();
    const proc = this.dc._adapterProcess; // the shell; it lives exactly as long as python
    this.pid = proc.pid;
    proc.stdin.on('error', () => {}); // writing to an adapter that already exited
    proc.stderr.on('data', (data) => { this.stderr += data.toString(); });
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.exitedNow = false;
    this.exited.then(() => { this.exitedNow = true; this._wake(); });
    return this;
  }

  _wake() {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Number of `name` events seen so far (pass it to `event` to wait for the next one). */
  mark(name) {
    return this.log[name].length;
  }

  /** The `index`-th `name` event (0-based), waiting for it if needed. */
  event(name, index, ms = HANG_MS) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.log[name].length > index) {
          done();
          resolve(this.log[name][index]);
        } else if (this.exitedNow) {
          done();
          reject(new Error(`the adapter exited before sending '${name}'\n${this.stderrTail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no '${name}' event after ${ms} ms\n${this.stderrTail()}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  stderrTail() {
    const text = this.stderr.trim();
    return text ? `adapter stderr (tail):\n${text.slice(-2000)}` : '(adapter stderr empty)';
  }

  /**
   * initialize + launch + (breakpoints, exception filters) + configurationDone, as VS Code does it.
   * `breakpoints`: {path: [line | {line, condition?, hitCondition?, logMessage?}]}.
   */
  async launch(args, { breakpoints = {}, exceptionFilters = [] } = {}) {
    const dc = this.dc;
    const init = await dc.initializeRequest({
      clientID: 'vscode', clientName: 'DebugClient tests', adapterID: 'prodture', locale: 'en',
      linesStartAt1: true, columnsStartAt1: true, pathFormat: 'path',
      supportsVariableType: true, supportsVariablePaging: true, supportsRunInTerminalRequest: false,
      supportsMemoryReferences: false, supportsProgressReporting: false, supportsInvalidatedEvent: true,
    });
    this.capabilities = init.body || {};
    const initialized = this.event('initialized', 0);
    initialized.catch(() => {});
    const launched = dc.launchRequest({ type: 'prodture', request: 'launch', name: 'test', ...args });
    launched.catch(() => {});
    // a failed launch may come without any `initialized` event: whichever settles first
    await Promise.race([initialized, launched.then(() => initialized)]);
    for (const [file, list] of Object.entries(breakpoints)) {
      // a number is a plain line breakpoint; an object may add condition / hitCondition / logMessage
      const bps = list.map((bp) => (typeof bp === 'number' ? { line: bp } : bp));
      const response = await dc.setBreakpointsRequest({
        source: { path: file }, lines: bps.map((bp) => bp.line), breakpoints: bps,
      });
      this.breakpointResponses = (this.breakpointResponses || []).concat(response.body.breakpoints);
    }
    await dc.setExceptionBreakpointsRequest({ filters: exceptionFilters });
    await dc.configurationDoneRequest();
    await launched;
    return this.capabilities;
  }

  /** Send a request that resumes execution; wait for the stop it causes and the position event. */
  async resume(send) {
    const stops = this.mark('stopped');
    const positions = this.mark('prodture/position');
    const response = await send();
    const stopped = await this.event('stopped', stops);
    const position = (await this.event('prodture/position', positions)).body;
    const frame = await this.topFrame(stopped.body.threadId);
    return { response, stopped: stopped.body, position, frame, threadId: stopped.body.threadId };
  }

  /** The first stop after launch (breakpoint, entry or exception). */
  async firstStop() {
    const stopped = await this.event('stopped', 0);
    const position = (await this.event('prodture/position', 0)).body;
    const frame = await this.topFrame(stopped.body.threadId);
    return { stopped: stopped.body, position, frame, threadId: stopped.body.threadId };
  }

  async topFrame(threadId) {
    const trace = await this.dc.stackTraceRequest({ threadId, startFrame: 0, levels: 20 });
    const frame = trace.body.stackFrames[0];
    assert.ok(frame, 'stackTrace returned no frames');
    return frame;
  }

  /** {name: value} of a scope of `frame` (default the locals). */
  async variables(frame, scopeName = /^locals$/i) {
    const scopes = await this.dc.scopesRequest({ frameId: frame.id });
    const scope = scopes.body.scopes.find((s) => scopeName.test(s.name));
    assert.ok(scope, `no scope matching ${scopeName}; scopes: ${scopes.body.scopes.map((s) => s.name)}`);
    const vars = await this.dc.variablesRequest({ variablesReference: scope.variablesReference });
    return Object.fromEntries(vars.body.variables.map((v) => [v.name, v.value]));
  }

  /** End the session like VS Code does (disconnect), then make sure nothing is left running. */
  async stop() {
    if (!this.pid) return;
    const family = [this.pid, ...descendants(this.pid)];
    if (!this.exitedNow) {
      // DebugClient.stop: disconnect, then kill the spawned shell (its promise never settles if the
      // adapter died without answering, hence the race)
      await Promise.race([this.dc.stop(), this.exited, sleep(5000)]);
    }
    await waitGone(family, 5000);
    for (const pid of family) {
      if (alive(pid)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }
    try { process.kill(-this.pid, 'SIGKILL'); } catch { /* group already gone */ }
    this.dc.removeAllListeners();
    this.pid = undefined;
  }
}

async function startSession() {
  return new Session().start();
}

function realpath(p) {
  try { return fs.realpathSync(p); } catch { return path.resolve(p); }
}

function assertAt(frame, file, line, what = '') {
  assert.ok(frame.source && frame.source.path, `${what}: top frame has no source path`);
  assert.strictEqual(realpath(frame.source.path), realpath(file), `${what}: stopped in another file`);
  assert.strictEqual(frame.line, line, `${what}: stopped on another line`);
}

module.exports = {
  PYTHON, REPO, CHECKOUT, LINES, HANG_MS,
  tempDir, removeTempDirs, copyCheckout, recordCheckout,
  descendants, childrenOf, alive, waitGone, withTimeout, sleep,
  Session, startSession, realpath, assertAt,
};
