import * as assert from 'assert';
import { MANAGE_TRUST_COMMAND, safePythonEnv, untrustedInterpreterProblem, untrustedMessage, viewerReason } from '../../src/lib/trust';

describe('Restricted Mode', () => {
  it('says in one line what is off, why, and how to trust the folder', () => {
    for (const action of ['replay', 'debug', 'store', 'books', 'install'] as const) {
      const m = untrustedMessage(action);
      assert.ok(!m.includes('\n'), m);
      assert.match(m, /not trusted/);
      assert.match(m, /runs its code/);
      assert.match(m, /Workspaces: Manage Workspace Trust/);
    }
    assert.match(untrustedMessage('replay'), /^Replay is off/);
    assert.match(untrustedMessage('debug'), /^Debug is off/);
    assert.match(untrustedMessage('store'), /^Opening a trace from a store is off/);
    assert.match(viewerReason(), /^Replay and Debug are off .*not trusted.*Manage Workspace Trust/);
    assert.strictEqual(MANAGE_TRUST_COMMAND, 'workbench.trust.manage');
  });
  it('does not start an interpreter that lives in the untrusted folder', () => {
    const folders = ['/ws/app'];
    assert.match(untrustedInterpreterProblem('/ws/app/.venv/bin/python', false, folders) ?? '', /inside this untrusted folder.*prodture\.python/);
    assert.strictEqual(untrustedInterpreterProblem('/ws/app/.venv/bin/python', true, folders), undefined);
    assert.strictEqual(untrustedInterpreterProblem('/usr/bin/python3', false, folders), undefined);
    assert.strictEqual(untrustedInterpreterProblem('/ws/app-venv/bin/python', false, folders), undefined);
    assert.strictEqual(untrustedInterpreterProblem('python3', false, folders), undefined);
  });
  it('keeps the working folder off sys.path while untrusted', () => {
    const base = { PATH: '/bin', PYTHONSAFEPATH: undefined };
    assert.strictEqual(safePythonEnv(base, false).PYTHONSAFEPATH, '1');
    assert.strictEqual(safePythonEnv(base, true).PYTHONSAFEPATH, undefined);
    assert.strictEqual(safePythonEnv(base, true).PATH, '/bin');
    assert.strictEqual(safePythonEnv(base, false).PYTHONUNBUFFERED, '1');
  });
});
