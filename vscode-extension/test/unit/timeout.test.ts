import * as assert from 'assert';
import { withTimeout } from '../../src/lib/timeout';

/** Timers the Node event loop holds. */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('withTimeout', () => {
  // Mocha arms its own test timer once the test function returns its promise (at the first
  // await): each test first yields once, then counts timers from there.
  it('answers with the work and clears its timer', async () => {
    await null;
    const before = timers();
    const answer = withTimeout(Promise.resolve(42), 60_000, 'too slow');
    assert.strictEqual(timers(), before + 1, 'the time limit is armed');
    assert.strictEqual(await answer, 42);
    assert.strictEqual(timers(), before, 'the time limit is cleared');
  });
  it('passes the work’s failure on and clears its timer', async () => {
    await null;
    const before = timers();
    const answer = withTimeout(Promise.reject(new Error('adapter gone')), 60_000, 'too slow');
    assert.strictEqual(timers(), before + 1);
    await assert.rejects(answer, /adapter gone/);
    assert.strictEqual(timers(), before);
  });
  it('gives up with the message when the work does not answer in time', async () => {
    const never = new Promise<number>(() => undefined);
    await assert.rejects(withTimeout(never, 20, 'no answer in 0.02 s'), /^Error: no answer in 0\.02 s$/);
  });
});
