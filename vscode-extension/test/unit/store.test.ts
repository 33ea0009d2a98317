import * as assert from 'assert';
import { ambiguousCandidates, cliArgs, looksLikeProdtureOtlp, maskPassword, parseListing, parseTraceLink, pickItems } from '../../src/lib/store';

const failed = {
  trace_id: '3f2a9c01aa0000000000000000000000',
  handler: 'checkout.service:place_order',
  started_at: '2026-11-30T10:42:07.123456+00:00',
  duration_ms: 12.5,
  ok: false,
  error_type: 'checkout.service.PaymentDeclined',
  error_message: 'card declined',
  failed_effect: 3,
  host: 'web-7',
  service: 'shop',
};

describe('trace store', () => {
  it('shows a failure as handler, error, time and host; the id below', () => {
    const [item] = pickItems([failed]);
    assert.strictEqual(item.label, '$(error) place_order — PaymentDeclined: card declined');
    assert.strictEqual(item.description, '2026-11-30 10:42:07 UTC · web-7 · shop');
    assert.strictEqual(item.detail, '3f2a9c01aa0000000000000000000000  checkout.service:place_order at effect #3');
    assert.strictEqual(item.traceId, failed.trace_id);
  });
  it('parses list --json and refuses what is not a list', () => {
    assert.deepStrictEqual(parseListing(JSON.stringify([failed, { nope: 1 }])), [failed]);
    assert.ok(parseListing('prodture: oops') instanceof Error);
    assert.ok(parseListing('{}') instanceof Error);
  });
  it('passes the store setting to the CLI and masks passwords when showing it', () => {
    assert.deepStrictEqual(cliArgs(['list', '--json'], ' postgresql://u:pw@h/db '), ['-m', 'prodture.cli', 'list', '--json', '--store', 'postgresql://u:pw@h/db']);
    assert.deepStrictEqual(cliArgs(['list'], ''), ['-m', 'prodture.cli', 'list']);
    assert.strictEqual(maskPassword('cannot reach postgresql://u:pw@h:5432/db'), 'cannot reach postgresql://u:***@h:5432/db');
    assert.strictEqual(maskPassword('host=h password=abc dbname=x'), 'host=h password=*** dbname=x');
  });
  it('reads the candidates of an ambiguous prefix', () => {
    const stderr = "prodture: trace id prefix 'ab' matches 2 traces; give more characters:\n  ab0000000000  2026-11-30 ...\n  ab1111111111  2026-11-29 ...\n";
    assert.deepStrictEqual(ambiguousCandidates(stderr), ['ab0000000000', 'ab1111111111']);
    assert.deepStrictEqual(ambiguousCandidates('prodture: no trace with id'), []);
  });
  it('takes only an id and a debug flag from a link', () => {
    assert.deepStrictEqual(parseTraceLink('/open', 'id=3F2A9C&debug=1'), { id: '3f2a9c', debug: true });
    assert.deepStrictEqual(parseTraceLink('/open', 'id=3f2a9c&store=postgresql://evil/db'), { id: '3f2a9c', debug: false });
    assert.match(String(parseTraceLink('/open', 'id=../../etc/passwd')), /is not a trace id/);
    assert.match(String(parseTraceLink('/run', 'id=3f')), /unknown prodture link/);
    assert.match(String(parseTraceLink('/open', '')), /has no id/);
  });
  it('recognises an OpenTelemetry export that holds prodture executions', () => {
    const line = '{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"prodture.header.msgpack","value":{"stringValue":"gw=="}}]}]}]}]}';
    assert.ok(looksLikeProdtureOtlp('/x/export.jsonl', line));
    assert.ok(!looksLikeProdtureOtlp('/x/export.jsonl', '{"resourceSpans":[]}'));
    assert.ok(!looksLikeProdtureOtlp('/x/package.json', '{"name": "prodture.header.msgpack"}'));
  });
});
