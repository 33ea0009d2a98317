'use strict';
/**
 * A short protocol-conformance check of `python -m prodture.adapter` with Microsoft's
 * DebugClient, as vscode-mock-debug's adapter tests do: the DAP handshake, a breakpoint, a step
 * back, an exception stop and the end of a session, on the failing checkout trace recorded for
 * real. The adapter's behaviours are tested in Python (tests/test_adapter*.py).
 */
const assert = require('assert');
const { recordCheckout, removeTempDirs, startClient, stopClient } = require('./helpers');

describe('prodture adapter: DAP conformance (DebugClient)', function () {
  let rec;
  let dc;

  before(function () {
    this.timeout(180000);
    rec = recordCheckout();
  });
  after(removeTempDirs);

  beforeEach(async function () {
    dc = await startClient();
  });

  afterEach(async function () {
    await stopClient(dc);
  });

  const launchArgs = () => ({ type: 'prodture', request: 'launch', name: 'test', trace: rec.failing, cwd: rec.example });

  it('answers an unknown request with an error', async function () {
    await assert.rejects(dc.send('illegal_request'));
  });

  it('initialize returns the supported features: configurationDone, step back, the effect filters', async function () {
    const response = await dc.initializeRequest();
    const caps = response.body || {};
    assert.strictEqual(caps.supportsConfigurationDoneRequest, true);
    assert.strictEqual(caps.supportsStepBack, true);
    assert.deepStrictEqual((caps.exceptionBreakpointFilters || []).map((f) => f.filter).sort(),
      ['effectFailed', 'everyEffect', 'raised', 'uncaught']);
  });

  it('launch with no filter runs the replay to its end pause, and continue ends the session', async function () {
    const stopped = dc.waitForEvent('stopped');
    await Promise.all([
      dc.waitForEvent('initialized')
        .then(() => dc.setExceptionBreakpointsRequest({ filters: [] })) // effectFailed is on by default
        .then(() => dc.configurationDoneRequest()),
      dc.launch(launchArgs()),
    ]);
    const stop = await stopped;
    assert.match(stop.body.description, /^End of replay/);
    const terminated = dc.waitForEvent('terminated');
    await dc.continueRequest({ threadId: stop.body.threadId });
    await terminated;
  });

  it('setBreakpoints: stops on the ChargeCard line, and stepBack goes to the line before', async function () {
    const location = { path: rec.service, line: rec.lines.charge };
    await dc.hitBreakpoint(launchArgs(), location);
    const threads = await dc.threadsRequest();
    const threadId = threads.body.threads[0].id;
    await Promise.all([
      dc.stepBackRequest({ threadId }),
      dc.assertStoppedLocation('step', { path: rec.service, line: rec.lines.try }),
    ]);
  });

  it('setExceptionBreakpoints: the effectFailed filter stops where the recorded decline arrives', async function () {
    await Promise.all([
      dc.waitForEvent('initialized')
        .then(() => dc.setExceptionBreakpointsRequest({ filters: ['effectFailed'] }))
        .then(() => dc.configurationDoneRequest()),
      dc.launch(launchArgs()),
      dc.assertStoppedLocation('exception', { path: rec.service, line: rec.lines.charge }),
    ]);
  });
});
