'use strict';
/**
 * Breakpoint kinds VS Code users set (condition, hit count, logpoint), forward and in reverse, on a
 * small loop handler recorded for real with prodture.Interpreter + Recorder + DirectorySink.
 */
const assert = require('assert');
const cp = require('child_process');
const fs = require('fs');
const path = require('path');
const { PYTHON, tempDir, removeTempDirs, startSession } = require('./helpers');

after(removeTempDirs);

const MODULE = `\
"""A loop handler for the DAP tests."""
import dataclasses

import prodture

SEEN = []


@dataclasses.dataclass(frozen=True)
class Fetch(prodture.Effect, name="looptest.Fetch"):
    i: int


@prodture.handler
def collect(request):
    total = 0
    for i in range(request["n"]):
        v = yield Fetch(i)
        total += v  # LOOP
        SEEN.append(v)  # SEEN
    return {"total": total, "seen": len(SEEN)}
`;

const RECORD = `\
import sys
sys.path.insert(0, sys.argv[1])
import prodture, looptest
interpreter = prodture.Interpreter({looptest.Fetch: lambda e: e.i * 10},
                                   recorder=prodture.Recorder(prodture.DirectorySink(sys.argv[2])))
outcome = interpreter.run(looptest.collect, {"n": 5})
assert outcome.ok, outcome
`;

const lineOf = (marker) => MODULE.split('\n').findIndex((l) => l.includes(marker)) + 1;
const LOOP = lineOf('# LOOP');
const SEEN_LINE = lineOf('# SEEN');

describe('prodture adapter: conditions, hit counts and logpoints, forward and in reverse', function () {
  let project;
  let module;
  let trace;
  let session;

  before(function () {
    this.timeout(120000);
    const dir = tempDir('prodture-dap-loop-');
    project = path.join(dir, 'project');
    fs.mkdirSync(project);
    module = path.join(project, 'looptest.py');
    fs.writeFileSync(module, MODULE);
    fs.writeFileSync(path.join(project, 'pyproject.toml'), '[tool.prodture]\nmodules = ["looptest"]\n');
    const traces = path.join(dir, 'traces');
    const run = cp.spawnSync(PYTHON, ['-c', RECORD, project, traces], { cwd: project, encoding: 'utf8', timeout: 60000 });
    assert.strictEqual(run.status, 0, run.stderr);
    [trace] = fs.readdirSync(traces).map((f) => path.join(traces, f));
  });

  beforeEach(async function () {
    session = await startSession();
  });

  afterEach(async function () {
    await session.stop();
  });

  const launch = (...bps) => session.launch({ trace, cwd: project }, { breakpoints: { [module]: bps } });

  async function setBreakpoint(bp) {
    await session.dc.setBreakpointsRequest({ source: { path: module }, breakpoints: bp ? [bp] : [] });
  }

  async function iAt(stop) {
    const locals = await session.variables(stop.frame);
    return locals.i === undefined ? undefined : Number(locals.i);
  }

  it('a conditional breakpoint stops only where its condition holds; reverse continue evaluates it as it was then', async function () {
    await launch({ line: LOOP, condition: 'i == 3' });
    const stop = await session.firstStop();
    assert.strictEqual(stop.stopped.reason, 'breakpoint');
    assert.strictEqual(stop.frame.line, LOOP);
    assert.strictEqual(await iAt(stop), 3);

    await setBreakpoint({ line: LOOP, condition: 'i % 2 == 0' });
    const back = await session.resume(() => session.dc.reverseContinueRequest({ threadId: stop.threadId }));
    assert.strictEqual(back.stopped.reason, 'breakpoint');
    assert.strictEqual(back.frame.line, LOOP);
    assert.strictEqual(await iAt(back), 2, 'the latest earlier step where i % 2 == 0');
    const fwd = await session.resume(() => session.dc.continueRequest({ threadId: stop.threadId }));
    assert.strictEqual(await iAt(fwd), 4);
  });

  it('a hit count N stops on the N-th hit only (debugpy semantics), forward and in reverse', async function () {
    await launch({ line: LOOP, hitCondition: '3' });
    const third = await session.firstStop();
    assert.strictEqual(third.stopped.reason, 'breakpoint');
    assert.strictEqual(await iAt(third), 2, 'the 3rd hit is i == 2');
    const end = await session.resume(() => session.dc.continueRequest({ threadId: third.threadId }));
    assert.notStrictEqual(end.frame.line, LOOP, 'no stop on the 4th and 5th hits');
    assert.strictEqual(end.position.nextEffect, null, 'the end of the replay');

    const back = await session.resume(() => session.dc.reverseContinueRequest({ threadId: third.threadId }));
    assert.strictEqual(back.stopped.reason, 'breakpoint');
    assert.strictEqual(await iAt(back), 2, 'reverse continue finds the 3rd hit again');
    assert.strictEqual(back.position.step, third.position.step);
    const start = await session.resume(() => session.dc.reverseContinueRequest({ threadId: third.threadId }));
    assert.strictEqual(start.stopped.reason, 'entry', 'no earlier 3rd hit: back to the start');
  });

  it('a logpoint logs every hit to the debug console and never stops', async function () {
    await launch({ line: LOOP, logMessage: 'got {v} at i={i}' });
    const end = await session.firstStop();
    assert.strictEqual(end.position.nextEffect, null, 'ran to the end without stopping at the logpoint');
    const logged = session.log.output.map((e) => e.body.output).join('');
    for (let i = 0; i < 5; i++) assert.ok(logged.includes(`got ${i * 10} at i=${i}`), `missing hit ${i} in:\n${logged}`);
  });

  // was BUG 1 in /tmp/adapter-bugs.md: module-level state mutated by the handler must be put back
  // before every re-run, or a revisited step shows other values and the replay then "diverges".
  it('revisiting a step shows the module-level state it had the first time', async function () {
    await session.launch({ trace, cwd: project }, { breakpoints: { [module]: [SEEN_LINE] } });
    let stop = await session.firstStop();
    stop = await session.resume(() => session.dc.continueRequest({ threadId: stop.threadId }));
    stop = await session.resume(() => session.dc.continueRequest({ threadId: stop.threadId }));
    const seen = async (s) => (await session.dc.evaluateRequest({ expression: 'list(SEEN)', frameId: s.frame.id, context: 'watch' })).body.result;
    assert.strictEqual(await seen(stop), '[0, 10]');
    const back = await session.resume(() => session.dc.stepBackRequest({ threadId: stop.threadId }));
    assert.strictEqual(await seen(back), '[0, 10]', 'before the 3rd append');
    const back2 = await session.resume(() => session.dc.reverseContinueRequest({ threadId: stop.threadId }));
    assert.strictEqual(await seen(back2), '[0]');
    await setBreakpoint(null);
    const end = await session.resume(() => session.dc.continueRequest({ threadId: stop.threadId }));
    assert.notStrictEqual(end.stopped.reason, 'exception', `${end.stopped.text}`);
    await session.dc.continueRequest({ threadId: stop.threadId });
    await session.event('terminated', 0);
    const said = session.log.output.map((e) => e.body.output).join('');
    assert.match(said, /reproduced/, said);
  });
});
