// How the trace viewer writes an effect's values and duration; the Replay timeline in the
// sidebar uses the same words so that an effect reads the same in both. No DOM, no VS Code API.

/** One line of at most `max` characters (whitespace runs collapsed, `…` when cut). */
export function clip(s: string | null | undefined, max = 80): string {
  if (s === null || s === undefined) return '';
  const one = String(s).replace(/\s+/g, ' ').trim();
  return one.length > max ? one.slice(0, max - 1) + '…' : one;
}

/** `250 µs`, `3.3 ms`, `120 ms`, `2.50 s`; '' when unknown. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
