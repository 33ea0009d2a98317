import * as assert from 'assert';
import { clip, formatDuration } from '../../src/webview/format';

describe('the trace viewer formatting', () => {
  it('formats durations from microseconds to seconds', () => {
    assert.strictEqual(formatDuration(0.25), '250 µs');
    assert.strictEqual(formatDuration(3.25), '3.3 ms');
    assert.strictEqual(formatDuration(120), '120 ms');
    assert.strictEqual(formatDuration(2500), '2.50 s');
    assert.strictEqual(formatDuration(undefined), '');
    assert.strictEqual(formatDuration(Number.NaN), '');
  });
  it('clips text to one line', () => {
    assert.strictEqual(clip('a\n  b', 10), 'a b');
    assert.strictEqual(clip('x'.repeat(20), 10), 'x'.repeat(9) + '…');
    assert.strictEqual(clip('x'.repeat(10), 10), 'x'.repeat(10));
    assert.strictEqual(clip(null), '');
  });
});
