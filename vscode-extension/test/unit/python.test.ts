import * as assert from 'assert';
import { checkArgs, choosePython, installCommand, interpreterMissingMessage, notInstalledMessage, shellQuote } from '../../src/lib/python';

describe('choosePython', () => {
  it('prefers the launch configuration, then the setting, then the Python extension, then python3', () => {
    assert.deepStrictEqual(choosePython({ launchPython: '/a/py', setting: '/b/py', pythonExtension: '/c/py' }), { python: '/a/py', source: 'launch.json' });
    assert.deepStrictEqual(choosePython({ setting: '/b/py', pythonExtension: '/c/py' }), { python: '/b/py', source: 'setting' });
    assert.deepStrictEqual(choosePython({ setting: '', pythonExtension: '/c/py' }), { python: '/c/py', source: 'python-extension' });
    assert.deepStrictEqual(choosePython({ setting: '  ' }), { python: 'python3', source: 'default' });
    assert.deepStrictEqual(choosePython({}), { python: 'python3', source: 'default' });
  });
  it('trims values', () => {
    assert.strictEqual(choosePython({ setting: ' /x/python ' }).python, '/x/python');
  });
});

describe('interpreter messages', () => {
  it('names the interpreter and the fix', () => {
    const m = notInstalledMessage('/work/.venv/bin/python');
    assert.match(m, /^prodture is not installed in \/work\/.venv\/bin\/python/);
    assert.ok(m.includes("`/work/.venv/bin/python -m pip install 'prodture[debug]'`"), m);
    assert.ok(m.endsWith('or set prodture.python'), m);
  });
  it('quotes paths with spaces', () => {
    assert.strictEqual(shellQuote('/My Envs/py'), `'/My Envs/py'`);
    assert.strictEqual(shellQuote("/it's/py"), `'/it'\\''s/py'`);
    assert.strictEqual(installCommand('python3'), "python3 -m pip install 'prodture[debug]'");
  });
  it('tells a missing interpreter apart', () => {
    assert.match(interpreterMissingMessage('python9'), /python9 could not be started: .*set prodture\.python/);
  });
  it('checks by importing the module', () => {
    assert.deepStrictEqual(checkArgs('prodture.adapter'), ['-c', 'import prodture.adapter']);
  });
});
