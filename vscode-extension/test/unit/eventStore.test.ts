// The argument lists and renderings behind "Fetch from Event Store…" and "Show Event Books".
import * as assert from 'assert';
import { booksArgs, fetchArgs, firstErrorLine, parseFetched, renderBooks, traceToOpen } from '../../src/lib/eventStore';

describe('event store commands', () => {
  it('builds the read-only fetch command for each way of naming what to fetch', () => {
    assert.deepStrictEqual(fetchArgs({ kind: 'correlation', store: ' sqlite:///var/events.db ', correlationId: 'hand-6' }), [
      '-m', 'prodture.cli', 'events', 'fetch', '--store', 'sqlite:///var/events.db', '--correlation-id', 'hand-6', '--json',
    ]);
    assert.deepStrictEqual(fetchArgs({ kind: 'trace', store: '', trace: '/t/x.prodtrace', upTo: 3, out: 'f.prodtrace' }), [
      '-m', 'prodture.cli', 'events', 'fetch', '--trace', '/t/x.prodtrace', '--up-to', '3', '--out', 'f.prodtrace', '--json',
    ]);
    const stream = fetchArgs({ kind: 'stream', domain: 'player', root: 'p-7', handler: 'poker.player:handle_player_command', command: '{"type": "poker.PlaceBet"}' });
    assert.deepStrictEqual(stream.slice(4), ['--domain', 'player', '--root', 'p-7', '--handler', 'poker.player:handle_player_command', '--command', '{"type": "poker.PlaceBet"}', '--json']);
    assert.deepStrictEqual(booksArgs('/t/x.prodtrace'), ['-m', 'prodture.cli', 'events', 'books', '/t/x.prodtrace', '--json']);
  });

  it('opens the first failing fetched trace, else the first', () => {
    const fetched = parseFetched(JSON.stringify([
      { path: 'a.prodtrace', handler: 'm:a', domain: 'player', root: 'p', sequence: 2, ok: true },
      { path: 'b.prodtrace', handler: 'm:b', domain: 'table', root: 't', sequence: 4, ok: false },
    ]));
    assert.strictEqual(traceToOpen(fetched)?.path, 'b.prodtrace');
    assert.strictEqual(traceToOpen([fetched[0]])?.path, 'a.prodtrace');
    assert.strictEqual(traceToOpen([]), undefined);
    assert.throws(() => parseFetched('prodture: no stream'), /did not answer JSON/);
    assert.throws(() => parseFetched('{"path": 1}'), /unexpected shape/);
  });

  it('renders event books as stream, sequence, event type and ids', () => {
    const md = renderBooks('x.prodtrace', [
      { effect: 1, kind: 'loaded', domain: 'player', root: 'p-8', pages: [
        { sequence: 1, type: 'poker.ChipsDeposited', correlation_id: 'deposit-2', causation_id: 'c1' },
      ] },
      { effect: 2, kind: 'appended', domain: 'player', root: 'p-8', pages: [] },
    ]);
    assert.ok(md.includes('## Effect #1: loaded player/p-8 (1 event)'));
    assert.ok(md.includes('| 1 | `poker.ChipsDeposited` | deposit-2 | c1 |'));
    assert.ok(md.includes('## Effect #2: appended player/p-8 (0 events)'));
    assert.ok(renderBooks('y', []).includes('No event books'));
  });

  it('reports the one-line prodture error, or the exit code', () => {
    assert.strictEqual(firstErrorLine('\nprodture: no stream player/p-0 in sqlite:///x\n', 2), 'prodture: no stream player/p-0 in sqlite:///x');
    assert.strictEqual(firstErrorLine('', 3), 'prodture events exited with code 3');
  });
});
