'use strict';
/**
 * Story 1 ("the $0 charge") through Microsoft's DebugClient: the failing checkout trace, recorded
 * for real in `before`, replayed by `python -m prodture.adapter`.
 */
const assert = require('assert');
const path = require('path');
const { LINES, recordCheckout, removeTempDirs, startSession, assertAt } = require('./helpers');

after(removeTempDirs);

describe('prodture adapter: replaying the failing checkout trace', function () {
  let rec;
  let session;

  before(function () {
    this.timeout(180000);
    rec = recordCheckout();
  });

  beforeEach(async function () {
    session = await startSession();
  });

  afterEach(async function () {
    await session.stop();
  });

  const launchArgs = () => ({ trace: rec.failing, cwd: rec.example });
  const bps = (...lines) => ({ [rec.service]: lines });

  it('advertises step back and the effect exception filters', async function () {
    const caps = await session.launch(launchArgs(), { breakpoints: bps(LINES.charge) });
    assert.strictEqual(caps.supportsStepBack, true, 'supportsStepBack turns on Step Back / Reverse in VS Code');
    assert.strictEqual(caps.supportsConfigurationDoneRequest, true);
    const filters = (caps.exceptionBreakpointFilters || []).map((f) => f.filter);
    for (const id of ['effectFailed', 'everyEffect']) {
      assert.ok(filters.includes(id), `exception filter ${id} missing (got ${filters})`);
    }
  });

  it('stops at a breakpoint on the ChargeCard line with total == Decimal("0.00")', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.charge) });
    const stop = await session.firstStop();
    assert.strictEqual(stop.stopped.reason, 'breakpoint');
    assertAt(stop.frame, rec.service, LINES.charge, 'breakpoint');
    const locals = await session.variables(stop.frame);
    assert.strictEqual(locals.total, "Decimal('0.00')");
    assert.strictEqual(locals.subtotal, "Decimal('15.00')");
    assert.ok(!('charge' in locals), 'ChargeCard has not been performed yet');
    // the breakpoint response verified the line
    const bp = session.breakpointResponses[0];
    assert.strictEqual(bp.verified, true);
    assert.strictEqual(bp.line, LINES.charge);
  });

  it('sends prodture/position after stops: effects performed so far and the next one', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.loadCart, LINES.charge) });
    const first = await session.firstStop();
    assertAt(first.frame, rec.service, LINES.loadCart, 'first stop');
    assert.strictEqual(first.position.effect, 0);
    assert.strictEqual(first.position.nextEffect, 1);
    assert.strictEqual(first.position.effectCount, 4);
    assert.strictEqual(first.position.line, LINES.loadCart);
    assert.ok(typeof first.position.step === 'number', 'position.step is a number');

    const second = await session.resume(() => session.dc.continueRequest({ threadId: first.threadId }));
    assertAt(second.frame, rec.service, LINES.charge, 'second stop');
    assert.strictEqual(second.position.effect, 2);
    assert.strictEqual(second.position.nextEffect, 3);
    assert.strictEqual(second.position.line, LINES.charge);
    assert.ok(second.position.step > first.position.step, 'the step index grows going forward');
    assert.ok(String(second.position.path).endsWith('service.py'));
  });

  it('steps over `x = yield Effect(...)` onto the next handler line, never into the runtime', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.loadCart) });
    const first = await session.firstStop();
    assertAt(first.frame, rec.service, LINES.loadCart, 'breakpoint');
    assert.ok(!('cart' in await session.variables(first.frame)));

    const next = await session.resume(() => session.dc.nextRequest({ threadId: first.threadId }));
    assert.strictEqual(next.stopped.reason, 'step');
    assertAt(next.frame, rec.service, LINES.subtotal, 'after next');
    const locals = await session.variables(next.frame);
    assert.match(locals.cart, /cart-1003/, 'the recorded cart was answered from the trace');
    assert.strictEqual(next.position.effect, 1);
    assert.strictEqual(next.position.nextEffect, 2);
  });

  it('steps into user helper code (cart.subtotal in model.py) and steps back out of it', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.subtotal) });
    const first = await session.firstStop();
    assertAt(first.frame, rec.service, LINES.subtotal, 'breakpoint');
    const into = await session.resume(() => session.dc.stepInRequest({ threadId: first.threadId }));
    assert.strictEqual(into.stopped.reason, 'step');
    assert.ok(into.frame.source.path.endsWith('model.py'), `stepIn went to ${into.frame.source.path}`);
    assert.strictEqual(into.frame.name, 'subtotal');
    // the call stack shows the user's frames only, not prodture's runtime or debugpy
    const stack = await session.dc.stackTraceRequest({ threadId: into.threadId, startFrame: 0, levels: 20 });
    assert.deepStrictEqual(stack.body.stackFrames.map((f) => `${f.name}@${path.basename(f.source.path)}:${f.line}`),
      ['subtotal@model.py:27', `place_order@service.py:${LINES.subtotal}`]);
    const back = await session.resume(() => session.dc.stepBackRequest({ threadId: first.threadId }));
    assertAt(back.frame, rec.service, LINES.subtotal, 'step back out of subtotal');
    assert.strictEqual(back.position.step, first.position.step);
  });

  it('step back retraces, line by line, what next walked forward, with the same state', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.loadCart) });
    let stop = await session.firstStop();
    const threadId = stop.threadId;
    const forward = [];
    const snapshot = async (s) => ({ line: s.frame.line, locals: await session.variables(s.frame), position: s.position });
    forward.push(await snapshot(stop));
    while (stop.frame.line !== LINES.charge) {
      assert.ok(forward.length < 10, `next never reached the ChargeCard line: ${forward.map((f) => f.line)}`);
      stop = await session.resume(() => session.dc.nextRequest({ threadId }));
      forward.push(await snapshot(stop));
    }
    assert.strictEqual(forward[0].line, LINES.loadCart);
    assert.ok(forward.some((f) => f.line === LINES.promo), 'next passed the promo line');

    // now back, one step at a time, to the first line
    for (let i = forward.length - 2; i >= 0; i--) {
      const back = await session.resume(() => session.dc.stepBackRequest({ threadId }));
      assert.strictEqual(back.stopped.reason, 'step');
      assertAt(back.frame, rec.service, forward[i].line, `step back #${forward.length - 1 - i}`);
      assert.deepStrictEqual(await session.variables(back.frame), forward[i].locals,
        `locals on line ${forward[i].line} differ between going forward and stepping back`);
      assert.strictEqual(back.position.effect, forward[i].position.effect);
      assert.strictEqual(back.position.step, forward[i].position.step);
      if (forward[i].line === LINES.promo) {
        // the promo line, as it was: priced subtotal, no total yet
        assert.strictEqual(forward[i].locals.subtotal, "Decimal('15.00')");
        assert.ok(!('total' in forward[i].locals), 'total is not assigned yet on the promo line');
        assert.strictEqual(back.position.effect, 1);
        assert.strictEqual(back.position.nextEffect, 2);
      }
    }
  });

  it('step back from the ChargeCard breakpoint lands on the previous line; the promo line is reached before LoadCart', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.charge) });
    const stop = await session.firstStop();
    const threadId = stop.threadId;
    const lines = [];
    let back;
    do {
      back = await session.resume(() => session.dc.stepBackRequest({ threadId }));
      lines.push(back.frame.line);
      assert.ok(lines.length <= 3, `stepping back from line ${LINES.charge} went ${lines}`);
    } while (back.frame.line !== LINES.promo);
    // Python traces `try:` (line 17) on 3.11+: one step back may land there first
    assert.ok(lines.every((l) => l > LINES.subtotal && l < LINES.charge), `step back went ${lines}`);
    const locals = await session.variables(back.frame);
    assert.strictEqual(locals.subtotal, "Decimal('15.00')");
    assert.ok(!('total' in locals));
  });

  it('reverse continue goes back to the previous breakpoint hit, and forward again', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.promo, LINES.charge) });
    const first = await session.firstStop();
    assertAt(first.frame, rec.service, LINES.promo, 'first stop');
    const threadId = first.threadId;
    const second = await session.resume(() => session.dc.continueRequest({ threadId }));
    assertAt(second.frame, rec.service, LINES.charge, 'second stop');

    const reverse = await session.resume(() => session.dc.reverseContinueRequest({ threadId }));
    assert.strictEqual(reverse.stopped.reason, 'breakpoint');
    assertAt(reverse.frame, rec.service, LINES.promo, 'after reverseContinue');
    assert.ok(!('total' in await session.variables(reverse.frame)), 'state rewound: total not assigned');
    assert.strictEqual(reverse.position.step, first.position.step);
    assert.strictEqual(reverse.position.effect, 1);

    const again = await session.resume(() => session.dc.continueRequest({ threadId }));
    assertAt(again.frame, rec.service, LINES.charge, 'continue after reverseContinue');
    assert.strictEqual((await session.variables(again.frame)).total, "Decimal('0.00')");
    assert.strictEqual(again.position.step, second.position.step);
  });

  it('prodture/jumpToEffect pauses on the line that yields effect N, forward and backward', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.loadCart) });
    const first = await session.firstStop();
    const threadId = first.threadId;

    const toCharge = await session.resume(() => session.dc.customRequest('prodture/jumpToEffect', { effect: 3 }));
    assert.strictEqual(toCharge.response.success, true);
    assert.strictEqual(toCharge.stopped.reason, 'goto');
    assertAt(toCharge.frame, rec.service, LINES.charge, 'jump to effect 3');
    assert.strictEqual(toCharge.position.effect, 2, 'effect 3 is not performed yet');
    assert.strictEqual(toCharge.position.nextEffect, 3);
    assert.strictEqual((await session.variables(toCharge.frame)).total, "Decimal('0.00')");

    const toPromo = await session.resume(() => session.dc.customRequest('prodture/jumpToEffect', { effect: 2 }));
    assert.strictEqual(toPromo.stopped.reason, 'goto');
    assertAt(toPromo.frame, rec.service, LINES.promo, 'jump back to effect 2');
    assert.strictEqual(toPromo.position.effect, 1);
    assert.ok(!('total' in await session.variables(toPromo.frame)));

    // a normal step still works after a jump
    const next = await session.resume(() => session.dc.nextRequest({ threadId }));
    assert.ok(next.frame.line > LINES.promo && next.frame.line <= LINES.charge, `next went to ${next.frame.line}`);
  });

  it('prodture/jumpToEffect refuses an effect the trace does not have, and stays where it is', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.promo) });
    const first = await session.firstStop();
    await assert.rejects(session.dc.customRequest('prodture/jumpToEffect', { effect: 99 }), /99|effect/i);
    const frame = await session.topFrame(first.threadId);
    assertAt(frame, rec.service, LINES.promo, 'after a refused jump');
  });

  it('prodture/effects lists the recorded effects and the failed one', async function () {
    await session.launch(launchArgs(), { breakpoints: bps(LINES.loadCart) });
    await session.firstStop();
    const response = await session.dc.customRequest('prodture/effects');
    const { effects, outcome } = response.body;
    assert.deepStrictEqual(effects.map((e) => e.seq), [1, 2, 3, 4]);
    assert.deepStrictEqual(effects.map((e) => e.ok), [true, true, false, true]);
    assert.match(effects[2].type, /ChargeCard/);
    assert.match(String(effects[2].error), /amount must be greater than zero/);
    assert.strictEqual(effects[2].line, LINES.charge);
    assert.strictEqual(outcome.ok, false);
  });

  it('stops on the recorded failure (effectFailed); stepping back from it reaches the promo line', async function () {
    await session.launch(launchArgs(), { exceptionFilters: ['effectFailed'] });
    const stop = await session.firstStop();
    assert.strictEqual(stop.stopped.reason, 'exception');
    assertAt(stop.frame, rec.service, LINES.charge, 'failed effect');
    assert.match(`${stop.stopped.text} ${stop.stopped.description}`, /PaymentDeclined|amount must be greater than zero/);
    assert.strictEqual((await session.variables(stop.frame)).total, "Decimal('0.00')");

    let back;
    for (let i = 0; i < 3; i++) {
      back = await session.resume(() => session.dc.stepBackRequest({ threadId: stop.threadId }));
      if (back.frame.line === LINES.promo) break;
    }
    assertAt(back.frame, rec.service, LINES.promo, 'stepping back from the failure');
    assert.ok(!('total' in await session.variables(back.frame)));
  });

  it('without breakpoints, pauses at the end of the replay (all effects done); step back works there; continue ends the session', async function () {
    await session.launch(launchArgs());
    const end = await session.firstStop();
    assert.notStrictEqual(end.stopped.reason, 'exception', 'no exception filter was set');
    assert.match(String(end.stopped.description), /end of replay/i);
    assert.strictEqual(end.position.effect, 4);
    assert.strictEqual(end.position.nextEffect, null);
    assert.ok(end.frame.source.path.endsWith('service.py'), 'the end pause is in the handler');

    const back = await session.resume(() => session.dc.stepBackRequest({ threadId: end.threadId }));
    assert.ok(back.position.step < end.position.step, 'stepped back from the end');
    assert.ok(back.frame.source.path.endsWith('service.py'));

    const again = await session.resume(() => session.dc.continueRequest({ threadId: end.threadId }));
    assert.strictEqual(again.position.step, end.position.step, 'continue runs to the end pause again');
    assert.strictEqual(again.position.nextEffect, null);

    await session.dc.continueRequest({ threadId: end.threadId });
    await session.event('terminated', 0);
  });

  it('with the uncaught filter, the end pause is an exception stop naming the recorded failure', async function () {
    await session.launch(launchArgs(), { exceptionFilters: ['uncaught'] });
    const end = await session.firstStop();
    assert.strictEqual(end.stopped.reason, 'exception');
    assert.match(String(end.stopped.description), /PaymentDeclined: amount must be greater than zero/);
    assert.strictEqual(end.stopped.text, 'PaymentDeclined');
    assert.strictEqual(end.position.nextEffect, null);
  });
});
