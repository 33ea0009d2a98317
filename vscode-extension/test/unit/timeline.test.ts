import * as assert from 'assert';
import { DapEffect, PositionEvent } from '../../src/lib/protocol';
import { statusAccessibleText, FLAT_LIMIT, GROUP_SIZE, childNodes, currentIndex, effectDescription, effectLabel, effectState, groupLabel, groupOf, statusText } from '../../src/lib/timeline';

const effects: DapEffect[] = [
  { seq: 1, type: 'LoadCart', request: "LoadCart(cart_id='c-42')", ok: true, result: 'Cart(items=2)', durationMs: 3.2 },
  { seq: 2, type: 'ApplyPromo', request: "ApplyPromo(code='FREE100')", ok: true, result: "Decimal('0.00')", durationMs: 0.4 },
  { seq: 3, type: 'ChargeCard', request: "ChargeCard(amount=Decimal('0.00'))", ok: false, error: 'CardDeclined: amount must be positive', durationMs: 120 },
];
const pos = (p: Partial<PositionEvent>): PositionEvent => ({ step: 5, effect: 2, effectCount: 3, nextEffect: 3, ...p });

describe('timeline model', () => {
  it('labels and describes effects', () => {
    assert.strictEqual(effectLabel(effects[2]), '#3 ChargeCard');
    assert.strictEqual(effectDescription(effects[0]), "LoadCart(cart_id='c-42') → Cart(items=2)");
    assert.strictEqual(effectDescription(effects[2]), "ChargeCard(amount=Decimal('0.00')) → ✗ CardDeclined: amount must be positive");
  });
  it('marks done / current / pending from the position', () => {
    const p = pos({});
    assert.deepStrictEqual(effects.map((e, i) => effectState(e, i, p)), ['done', 'done', 'current']);
    assert.deepStrictEqual(effects.map((e, i) => effectState(e, i, pos({ effect: 0, nextEffect: 1 }))), ['current', 'pending', 'pending']);
    assert.deepStrictEqual(effects.map((e, i) => effectState(e, i, pos({ effect: 3, nextEffect: null }))), ['done', 'done', 'done']);
    assert.deepStrictEqual(effects.map((e, i) => effectState(e, i, undefined)), ['pending', 'pending', 'pending']);
  });
  it('finds the row to reveal', () => {
    assert.strictEqual(currentIndex(effects, pos({})), 2);
    assert.strictEqual(currentIndex(effects, pos({ effect: 3, nextEffect: null })), 2);
    assert.strictEqual(currentIndex(effects, pos({ effect: 0, nextEffect: null })), -1);
    assert.strictEqual(currentIndex(effects, undefined), -1);
  });
  it('shows a flat list for short traces and groups for long ones', () => {
    assert.strictEqual(childNodes(3, undefined, effects).length, 3);
    const many: DapEffect[] = Array.from({ length: 2500 }, (_, i) => ({ seq: i + 1, type: 'Now', ok: true }));
    const roots = childNodes(many.length, undefined, many);
    assert.strictEqual(roots.length, Math.ceil(2500 / GROUP_SIZE));
    assert.ok(roots.every((n) => n.kind === 'group'));
    const last = roots[2];
    assert.ok(last.kind === 'group');
    assert.strictEqual(childNodes(many.length, last.kind === 'group' ? last : undefined, many).length, 500);
    assert.strictEqual(groupLabel(last.kind === 'group' ? last : (undefined as never), many), 'Effects #2001 – #2500');
    assert.deepStrictEqual(groupOf(2100, 2500), { kind: 'group', start: 2000, end: 2500 });
    assert.strictEqual(groupOf(5, FLAT_LIMIT), undefined);
  });
  it('writes the status bar', () => {
    assert.strictEqual(statusText(pos({})), '$(history) effect 2/3 · next #3 · step 5');
    assert.strictEqual(statusText(pos({ nextEffect: null, effect: 3 })), '$(history) effect 3/3 · end · step 5');
    assert.strictEqual(
      statusAccessibleText(pos({ path: '/ws/checkout/service.py', line: 18 })),
      'Replay position: effect 2 of 3 performed, next effect 3, step 5, service.py line 18',
    );
    assert.strictEqual(statusAccessibleText(pos({ nextEffect: null, effect: 3 })), 'Replay position: effect 3 of 3 performed, no effect left, step 5');
  });
});
