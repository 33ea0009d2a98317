// Virtualized list arithmetic and a page cache for the trace viewer — no DOM, no VS Code API.

export interface Range {
  /** first row index (inclusive) */
  start: number;
  /** last row index (exclusive) */
  end: number;
}

/** Rows to render for a viewport, with `overscan` extra rows on each side. */
export function visibleRange(scrollTop: number, viewportHeight: number, rowHeight: number, total: number, overscan = 10): Range {
  if (total <= 0 || rowHeight <= 0) return { start: 0, end: 0 };
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const count = Math.ceil(Math.max(0, viewportHeight) / rowHeight) + 1;
  const start = Math.max(0, Math.min(total - 1, first) - overscan);
  const end = Math.min(total, first + count + overscan);
  return { start, end: Math.max(start, end) };
}

/** Page numbers (0-based) that cover a range. */
export function pagesFor(range: Range, pageSize: number): number[] {
  if (range.end <= range.start) return [];
  const first = Math.floor(range.start / pageSize);
  const last = Math.floor((range.end - 1) / pageSize);
  const out: number[] = [];
  for (let p = first; p <= last; p++) out.push(p);
  return out;
}

/** scrollTop that puts a row in the middle of the viewport. */
export function scrollTopFor(index: number, viewportHeight: number, rowHeight: number, total: number): number {
  const max = Math.max(0, total * rowHeight - viewportHeight);
  const top = index * rowHeight - Math.floor((viewportHeight - rowHeight) / 2);
  return Math.max(0, Math.min(max, top));
}

/**
 * Rows fetched page by page. Keeps at most `maxPages` pages (least recently used go first) so a
 * 100,000-row trace scrolled end to end holds a bounded amount of memory.
 */
export class PageCache<T> {
  private pages = new Map<number, T[]>();
  private pending = new Set<number>();

  constructor(readonly pageSize: number, readonly maxPages = 50) {
    if (pageSize <= 0) throw new Error('pageSize must be positive');
  }

  /** Store rows starting at `offset` (which need not be page aligned). */
  put(offset: number, rows: T[]): void {
    for (let i = 0; i < rows.length; ) {
      const idx = offset + i;
      const page = Math.floor(idx / this.pageSize);
      const within = idx - page * this.pageSize;
      let arr = this.pages.get(page);
      if (!arr) arr = [];
      const n = Math.min(this.pageSize - within, rows.length - i);
      for (let k = 0; k < n; k++) arr[within + k] = rows[i + k];
      this.pages.delete(page);
      this.pages.set(page, arr);
      this.pending.delete(page);
      i += n;
    }
    while (this.pages.size > this.maxPages) {
      const oldest = this.pages.keys().next().value as number;
      this.pages.delete(oldest);
    }
  }

  get(index: number): T | undefined {
    const page = Math.floor(index / this.pageSize);
    const arr = this.pages.get(page);
    return arr ? arr[index - page * this.pageSize] : undefined;
  }

  hasPage(page: number): boolean {
    return this.pages.has(page);
  }

  /** Pages of `range` that are neither cached nor already requested; marks them requested. */
  missing(range: Range): number[] {
    const out: number[] = [];
    for (const p of pagesFor(range, this.pageSize)) {
      if (!this.pages.has(p) && !this.pending.has(p)) {
        this.pending.add(p);
        out.push(p);
      }
    }
    return out;
  }

  /** Forget that a page was requested (e.g. the request failed) so it is asked again. */
  release(page: number): void {
    this.pending.delete(page);
  }

  get size(): number {
    return this.pages.size;
  }
}
