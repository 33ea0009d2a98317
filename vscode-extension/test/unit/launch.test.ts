import * as assert from 'assert';
import { configForTrace, isTracePath, resolveAfterSubstitution, resolveBeforeSubstitution } from '../../src/lib/launch';

describe('launch configuration', () => {
  const ctx = {
    activeTrace: '/ws/traces/checkout-1.prodtrace',
    workspaceFolderOf: (p: string) => (p.startsWith('/ws/') ? '/ws' : undefined),
    defaultFolder: '/first',
  };

  it('F5 without launch.json debugs the open trace', () => {
    const r = resolveBeforeSubstitution({}, ctx);
    assert.ok(r.ok);
    assert.deepStrictEqual(r.ok && r.config, { type: 'prodture', request: 'launch', name: 'Debug checkout-1.prodtrace', trace: '/ws/traces/checkout-1.prodtrace' });
  });

  it('F5 without launch.json and without a trace explains what to do', () => {
    const r = resolveBeforeSubstitution({}, { ...ctx, activeTrace: undefined });
    assert.ok(!r.ok);
    assert.match(!r.ok ? r.error : '', /Open a \.prodtrace file/);
  });

  it('replaces ${file} by the trace open in the viewer', () => {
    const r = resolveBeforeSubstitution({ type: 'prodture', request: 'launch', name: 'x', trace: '${file}' }, ctx);
    assert.strictEqual(r.ok && r.config.trace, '/ws/traces/checkout-1.prodtrace');
  });

  it('keeps an explicit trace', () => {
    const r = resolveBeforeSubstitution({ type: 'prodture', request: 'launch', name: 'x', trace: '/other.prodtrace' }, ctx);
    assert.strictEqual(r.ok && r.config.trace, '/other.prodtrace');
  });

  it('defaults cwd to the workspace folder of the trace', () => {
    const r = resolveAfterSubstitution({ type: 'prodture', request: 'launch', trace: '/ws/traces/a.prodtrace' }, ctx);
    assert.strictEqual(r.ok && r.config.cwd, '/ws');
    const r2 = resolveAfterSubstitution({ type: 'prodture', request: 'launch', trace: '/elsewhere/a.prodtrace' }, ctx);
    assert.strictEqual(r2.ok && r2.config.cwd, '/first');
    const r3 = resolveAfterSubstitution({ type: 'prodture', request: 'launch', trace: '/elsewhere/a.prodtrace' }, { workspaceFolderOf: () => undefined });
    assert.strictEqual(r3.ok && r3.config.cwd, '/elsewhere');
    const r4 = resolveAfterSubstitution({ type: 'prodture', request: 'launch', trace: '/ws/a.prodtrace', cwd: '/mine' }, ctx);
    assert.strictEqual(r4.ok && r4.config.cwd, '/mine');
  });

  it('rejects a missing or wrong trace with the fix', () => {
    const a = resolveAfterSubstitution({ type: 'prodture', request: 'launch' }, ctx);
    assert.ok(!a.ok && /no "trace": add "trace": "\$\{file\}"/.test(a.error));
    const b = resolveAfterSubstitution({ type: 'prodture', request: 'launch', trace: '/ws/service.py' }, ctx);
    assert.ok(!b.ok && /must be a \.prodtrace file, got \/ws\/service\.py/.test(b.error));
    const c = resolveAfterSubstitution({ type: 'prodture', request: 'attach', trace: '/ws/a.prodtrace' }, ctx);
    assert.ok(!c.ok && /unsupported request "attach"/.test(c.error));
  });

  it('builds a configuration for one trace', () => {
    assert.deepStrictEqual(configForTrace('/t/x.prodtrace', '/t'), { type: 'prodture', request: 'launch', name: 'Debug x.prodtrace', trace: '/t/x.prodtrace', cwd: '/t' });
  });

  it('recognises trace paths', () => {
    assert.ok(isTracePath('/x/Y.PRODTRACE'));
    assert.ok(!isTracePath('/x/y.py'));
    assert.ok(!isTracePath(undefined));
  });
});
