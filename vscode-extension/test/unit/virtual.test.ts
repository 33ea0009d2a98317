import * as assert from 'assert';
import { PageCache, pagesFor, scrollTopFor, visibleRange } from '../../src/lib/virtual';

describe('visibleRange', () => {
  it('covers the viewport plus overscan, clipped to the list', () => {
    assert.deepStrictEqual(visibleRange(0, 240, 24, 100_000, 5), { start: 0, end: 16 });
    assert.deepStrictEqual(visibleRange(24 * 1000, 240, 24, 100_000, 5), { start: 995, end: 1016 });
    assert.deepStrictEqual(visibleRange(24 * 99_995, 240, 24, 100_000, 5), { start: 99_990, end: 100_000 });
  });
  it('renders a bounded number of rows whatever the list size', () => {
    for (const total of [10, 1000, 100_000, 10_000_000]) {
      const r = visibleRange(24 * Math.floor(total / 2), 600, 24, total, 8);
      assert.ok(r.end - r.start <= 600 / 24 + 1 + 16, `${total}: ${r.end - r.start} rows`);
    }
  });
  it('handles empty lists and scrolling past the end', () => {
    assert.deepStrictEqual(visibleRange(0, 240, 24, 0), { start: 0, end: 0 });
    const r = visibleRange(1e9, 240, 24, 50, 5);
    assert.ok(r.start <= 49 && r.end === 50);
  });
});

describe('pagesFor / scrollTopFor', () => {
  it('lists the pages of a range', () => {
    assert.deepStrictEqual(pagesFor({ start: 0, end: 10 }, 200), [0]);
    assert.deepStrictEqual(pagesFor({ start: 190, end: 410 }, 200), [0, 1, 2]);
    assert.deepStrictEqual(pagesFor({ start: 5, end: 5 }, 200), []);
  });
  it('centres a row, clipped to the scroll range', () => {
    assert.strictEqual(scrollTopFor(0, 240, 24, 1000), 0);
    assert.strictEqual(scrollTopFor(500, 240, 24, 1000), 500 * 24 - 108);
    assert.strictEqual(scrollTopFor(999, 240, 24, 1000), 1000 * 24 - 240);
  });
});

describe('PageCache', () => {
  it('stores unaligned pages and reports what is missing once', () => {
    const c = new PageCache<number>(10, 100);
    c.put(5, [5, 6, 7, 8, 9, 10, 11, 12]);
    assert.strictEqual(c.get(5), 5);
    assert.strictEqual(c.get(12), 12);
    assert.strictEqual(c.get(13), undefined);
    assert.deepStrictEqual(c.missing({ start: 0, end: 35 }), [2, 3]);
    assert.deepStrictEqual(c.missing({ start: 0, end: 35 }), [], 'requested pages are not asked twice');
    c.release(3);
    assert.deepStrictEqual(c.missing({ start: 30, end: 35 }), [3]);
  });
  it('evicts the least recently stored pages beyond the bound', () => {
    const c = new PageCache<number>(10, 3);
    for (let p = 0; p < 5; p++) c.put(p * 10, Array.from({ length: 10 }, (_, i) => p * 10 + i));
    assert.strictEqual(c.size, 3);
    assert.ok(!c.hasPage(0) && !c.hasPage(1) && c.hasPage(4));
    assert.strictEqual(c.get(45), 45);
  });
  it('refuses a zero page size', () => {
    assert.throws(() => new PageCache(0));
  });
});
