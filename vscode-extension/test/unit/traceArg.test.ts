import * as assert from 'assert';
import { traceFromArgument } from '../../src/lib/traceArg';

describe('the trace a command is about', () => {
  it('reads a path, a Uri and the arguments of a code lens', () => {
    assert.strictEqual(traceFromArgument('/t/a.prodtrace'), '/t/a.prodtrace');
    assert.strictEqual(traceFromArgument({ fsPath: '/t/b.prodtrace', scheme: 'file' }), '/t/b.prodtrace');
    assert.strictEqual(traceFromArgument(['/t/latest.prodtrace', '/t/older.prodtrace']), '/t/latest.prodtrace');
  });
  it('has none for anything else (the command then uses the active tab or asks)', () => {
    for (const arg of [undefined, null, '', [], [3], {}, { fsPath: 7 }, 12]) assert.strictEqual(traceFromArgument(arg), undefined, JSON.stringify(arg));
  });
});
