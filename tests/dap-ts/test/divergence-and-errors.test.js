'use strict';
/**
 * Story 3 (the fix check: an edited handler diverges precisely) and bad input: each fails the
 * launch with one clear line, and the adapter process ends instead of hanging.
 */
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const {
  LINES, recordCheckout, copyCheckout, tempDir, removeTempDirs, startSession, assertAt, descendants, childrenOf, waitGone,
  withTimeout, HANG_MS,
} = require('./helpers');

after(removeTempDirs);

/** Edit one line of a copy of the example; returns the copy's folder and service.py path. */
function editedCopy(into, line, edit) {
  const example = copyCheckout(into);
  const service = path.join(example, 'checkout', 'service.py');
  const lines = fs.readFileSync(service, 'utf8').split('\n');
  const before = lines[line - 1];
  lines[line - 1] = edit(before);
  assert.notStrictEqual(lines[line - 1], before, 'the edit changed nothing');
  fs.writeFileSync(service, lines.join('\n'));
  return { example, service };
}

describe('prodture adapter: divergence after editing the handler', function () {
  let rec;
  let session;

  before(function () {
    this.timeout(180000);
    rec = recordCheckout();
  });

  afterEach(async function () {
    if (session) await session.stop();
    session = undefined;
  });

  it('stops with reason exception on the diverging effect, saying what was recorded and what the code does now', async function () {
    const dir = tempDir('prodture-dap-edit-');
    const { example, service } = editedCopy(dir, LINES.charge, (l) => l.replace('amount=total)', 'amount=total + 1)'));
    session = await startSession();
    await session.launch({ trace: rec.failing, cwd: example });
    const stop = await session.firstStop();
    assert.strictEqual(stop.stopped.reason, 'exception');
    assertAt(stop.frame, service, LINES.charge, 'divergence');
    const text = `${stop.stopped.text || ''} ${stop.stopped.description || ''}`;
    assert.match(text, /ChargeCard/, text);
    assert.match(text, /#\s*3|effect 3/i, `names the effect number: ${text}`);
    assert.match(text, /0\.00/, `shows the recorded amount: ${text}`);
    assert.match(text, /1\.00/, `shows the amount the code asks for now: ${text}`);
    // the state at the divergence is inspectable
    assert.strictEqual((await session.variables(stop.frame)).total, "Decimal('0.00')");
  });

  it('restart after editing the handler replays the edited code and stops at the divergence', async function () {
    const dir = tempDir('prodture-dap-restart-');
    const example = copyCheckout(dir);
    const service = path.join(example, 'checkout', 'service.py');
    session = await startSession();
    const args = { trace: rec.failing, cwd: example };
    await session.launch(args, { breakpoints: { [service]: [LINES.promo] } });
    const first = await session.firstStop();
    assertAt(first.frame, service, LINES.promo, 'before the edit');

    // the fix attempt: charge at least one cent
    const lines = fs.readFileSync(service, 'utf8').split('\n');
    lines[LINES.charge - 1] = lines[LINES.charge - 1].replace('amount=total)', 'amount=total + 1)');
    fs.writeFileSync(service, lines.join('\n'));
    await session.dc.setBreakpointsRequest({ source: { path: service }, breakpoints: [] });

    const stop = await session.resume(() => session.dc.restartRequest({ arguments: { type: 'prodture', request: 'launch', ...args } }));
    assert.strictEqual(stop.stopped.reason, 'exception');
    assertAt(stop.frame, service, LINES.charge, 'after restart');
    assert.match(`${stop.stopped.text} ${stop.stopped.description}`, /ChargeCard/);
  });

  it("the handler's print() output reaches the debug console without corrupting the DAP stream", async function () {
    const dir = tempDir('prodture-dap-print-');
    const { example, service } = editedCopy(dir, LINES.subtotal,
      (l) => `${l}; print("subtotal is", subtotal); import sys; print("to stderr", file=sys.stderr)`);
    session = await startSession();
    await session.launch({ trace: rec.failing, cwd: example }, { breakpoints: { [service]: [LINES.charge] } });
    const stop = await session.firstStop();
    assert.strictEqual(stop.stopped.reason, 'breakpoint');
    assertAt(stop.frame, service, LINES.charge, 'after printing');
    const said = (category) => session.log.output.filter((e) => e.body.category === category).map((e) => e.body.output).join('');
    for (let i = 0; i < 50 && !(said('stdout').includes('subtotal is 15.00') && said('stderr').includes('to stderr')); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(said('stdout').includes('subtotal is 15.00'), `stdout output events: ${JSON.stringify(said('stdout'))}`);
    assert.ok(said('stderr').includes('to stderr'), `stderr output events: ${JSON.stringify(said('stderr'))}`);
  });

  it('replays the unedited copy without any divergence stop', async function () {
    session = await startSession();
    await session.launch({ trace: rec.failing, cwd: rec.example });
    const end = await session.firstStop();
    assert.notStrictEqual(end.stopped.reason, 'exception', `${end.stopped.text}`);
    assert.match(String(end.stopped.description), /end of replay/i);
    assert.strictEqual(end.position.effect, 4, 'every recorded effect was replayed');
  });
});

describe('prodture adapter: bad input fails the launch with one clear message, and the adapter exits', function () {
  let rec;
  let session;

  before(function () {
    this.timeout(180000);
    rec = recordCheckout();
  });

  afterEach(async function () {
    if (session) await session.stop();
    session = undefined;
  });

  /** Launch, expect the launch to fail; return its message after checking the adapter ends. */
  async function failedLaunch(args) {
    session = await startSession();
    let message;
    try {
      await session.launch(args);
    } catch (error) {
      message = error.message;
    }
    assert.ok(message !== undefined, 'the launch succeeded');
    assert.ok(message.trim().length > 0, 'the error has a message');
    assert.ok(!message.trim().includes('\n'), `one line, not a traceback:\n${message}`);
    assert.ok(!/Traceback \(most recent call last\)/.test(message), message);
    // VS Code disconnects after a failed launch; the adapter must then be gone (or be gone already)
    const family = [session.pid, ...descendants(session.pid)];
    if (!session.exitedNow) {
      await Promise.race([session.dc.disconnectRequest({}).catch(() => {}), session.exited]);
    }
    await withTimeout(session.exited, HANG_MS, 'adapter exit after a failed launch');
    assert.ok(await waitGone(family), 'a process the adapter started is still running');
    return message;
  }

  it('launch config without `trace`', async function () {
    const message = await failedLaunch({ cwd: rec.example });
    assert.match(message, /\btrace\b/, message);
  });

  it('a trace path that does not exist', async function () {
    const missing = path.join(rec.dir, 'nope', 'missing.prodtrace');
    const message = await failedLaunch({ trace: missing, cwd: rec.example });
    assert.ok(message.includes('missing.prodtrace'), message);
  });

  it('a corrupt trace file', async function () {
    const corrupt = path.join(rec.dir, 'corrupt.prodtrace');
    fs.writeFileSync(corrupt, Buffer.concat([Buffer.from('this is not msgpack \x00\xff\xc1'), Buffer.alloc(64, 0xc1)]));
    const message = await failedLaunch({ trace: corrupt, cwd: rec.example });
    assert.ok(message.includes('corrupt.prodtrace'), `names the file: ${message}`);
  });

  it('a handler module with a syntax error', async function () {
    const dir = tempDir('prodture-dap-syntax-');
    const { example } = editedCopy(dir, LINES.subtotal, (l) => l.replace('cart.subtotal()', 'cart.subtotal('));
    const message = await failedLaunch({ trace: rec.failing, cwd: example });
    assert.match(message, /SyntaxError/, message);
    assert.match(message, /service\.py/, `names the file: ${message}`);
  });
});

describe('prodture adapter: ending a session', function () {
  let rec;

  before(function () {
    this.timeout(180000);
    rec = recordCheckout();
  });

  it('disconnect while stopped ends the adapter and the debuggee', async function () {
    const session = await startSession();
    try {
      await session.launch({ trace: rec.failing, cwd: rec.example }, { breakpoints: { [rec.service]: [LINES.charge] } });
      await session.firstStop();
      const family = [session.pid, ...descendants(session.pid)];
      assert.ok(family.length >= 3, 'a shell, the adapter and a debuggee are running');
      await session.dc.disconnectRequest({ terminateDebuggee: true });
      await withTimeout(session.exited, HANG_MS, 'adapter exit after disconnect');
      assert.ok(await waitGone(family), 'the debuggee outlived the session');
    } finally {
      await session.stop();
    }
  });

  it('killing the adapter process (VS Code does on stop) ends the debuggee too', async function () {
    const session = await startSession();
    try {
      await session.launch({ trace: rec.failing, cwd: rec.example }, { breakpoints: { [rec.service]: [LINES.charge] } });
      await session.firstStop();
      const [adapter] = childrenOf(session.pid); // the shell's child: python -m prodture.adapter
      assert.ok(adapter, 'the adapter process');
      const family = descendants(session.pid);
      assert.ok(family.length >= 2, 'the adapter and a debuggee are running');
      process.kill(adapter, 'SIGKILL');
      await withTimeout(session.exited, HANG_MS, 'the shell after the adapter was killed');
      assert.ok(await waitGone(family), 'the debuggee outlived the killed adapter');
    } finally {
      await session.stop();
    }
  });
});
