import * as assert from 'assert';
import { OutputTail, replayArgs, replayNotice } from '../../src/lib/replay';

describe('the Replay command', () => {
  it('runs the CLI on the trace', () => {
    assert.deepStrictEqual(replayArgs('/t/a b.prodtrace'), ['-m', 'prodture.cli', 'replay', '/t/a b.prodtrace']);
  });
  it('turns the CLI exit code into the notification', () => {
    assert.deepStrictEqual(replayNotice('x.prodtrace', 0, 'reproduced: 4 effects', ''), { level: 'info', text: 'Replay of x.prodtrace reproduced the recording: reproduced: 4 effects' });
    assert.deepStrictEqual(replayNotice('x.prodtrace', 0, '', ''), { level: 'info', text: 'Replay of x.prodtrace reproduced the recording.' });
    assert.strictEqual(replayNotice('x.prodtrace', 1, 'effect #2 differs', '').level, 'warning');
    assert.match(replayNotice('x.prodtrace', 1, 'effect #2 differs', '').text, /diverges from the recording: effect #2 differs/);
    assert.deepStrictEqual(replayNotice('x.prodtrace', 2, '', 'prodture: trace is corrupt'), { level: 'error', text: 'prodture: trace is corrupt' });
    assert.match(replayNotice('x.prodtrace', null, '', '').text, /failed with exit code null/);
  });
  it('keeps the last stdout line and the first stderr line across chunks', () => {
    const t = new OutputTail();
    t.stdout('replaying…\nreprod');
    t.stdout('uced: 4 effects\n\n');
    t.stderr('first problem\nsecond line\n');
    t.stderr('later problem\n');
    assert.strictEqual(t.lastOut, 'reproduced: 4 effects');
    assert.strictEqual(t.firstErr, 'first problem');
  });
});
