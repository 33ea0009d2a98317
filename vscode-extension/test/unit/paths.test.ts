import * as assert from 'assert';
import { baseName, dirName, isInside } from '../../src/lib/paths';

describe('path helpers', () => {
  it('take names and folders of POSIX and Windows paths', () => {
    assert.strictEqual(baseName('/a/b/c.prodtrace'), 'c.prodtrace');
    assert.strictEqual(baseName('C:\\a\\c.prodtrace'), 'c.prodtrace');
    assert.strictEqual(dirName('/a/b/c'), '/a/b');
    assert.strictEqual(dirName('C:\\a\\c.prodtrace'), 'C:\\a');
    assert.strictEqual(dirName('/c'), '/');
    assert.strictEqual(dirName('c'), '.');
  });
  it('tell a path inside a folder from a sibling with the same prefix', () => {
    assert.ok(isInside('/ws/app/.venv/bin/python', '/ws/app'));
    assert.ok(isInside('/ws/app/.venv/bin/python', '/ws/app/'));
    assert.ok(isInside('C:\\ws\\app\\.venv\\Scripts\\python.exe', 'C:\\ws\\app'));
    assert.ok(isInside('/ws/app', '/ws/app'));
    assert.ok(!isInside('/ws/app-other/bin/python', '/ws/app'));
    assert.ok(!isInside('/usr/bin/python3', '/ws/app'));
    assert.ok(!isInside('/usr/bin/python3', ''));
  });
});
