// Pure helpers of the "Fetch from event store…" and "Show Event Books" commands: the
// `prodture events ...` argument lists and the rendering of their JSON answers. No vscode import,
// so the unit tests run them directly.

/** What to fetch: a flow by correlation id, or the failing command of a recorded trace. */
export type FetchRequest =
  | { kind: 'correlation'; store?: string; correlationId: string; out?: string }
  | { kind: 'trace'; store?: string; trace: string; upTo?: number; out?: string }
  | {
      kind: 'stream';
      store?: string;
      domain: string;
      root: string;
      handler: string;
      command: string;
      upTo?: number;
      out?: string;
    };

/** One fetched trace as `prodture events fetch --json` prints it. */
export interface FetchedTrace {
  path: string;
  handler: string;
  domain: string;
  root: string;
  sequence: number;
  ok: boolean;
}

export interface BookPage {
  sequence: number;
  type: string;
  correlation_id: string;
  causation_id: string;
}

/** One event book of a trace as `prodture events books --json` prints it. */
export interface EventBookView {
  effect: number;
  kind: 'loaded' | 'appended' | 'refused';
  domain: string;
  root: string;
  pages: BookPage[];
}

/** `python -m prodture.cli events fetch ...` arguments (after the interpreter). A store left
 * empty is resolved by prodture itself (PRODTURE_STORE, then [tool.prodture] store). */
export function fetchArgs(r: FetchRequest): string[] {
  const args = ['-m', 'prodture.cli', 'events', 'fetch'];
  if (r.store && r.store.trim()) args.push('--store', r.store.trim());
  switch (r.kind) {
    case 'correlation':
      args.push('--correlation-id', r.correlationId);
      break;
    case 'trace':
      args.push('--trace', r.trace);
      if (r.upTo !== undefined) args.push('--up-to', String(r.upTo));
      break;
    case 'stream':
      args.push('--domain', r.domain, '--root', r.root, '--handler', r.handler, '--command', r.command);
      if (r.upTo !== undefined) args.push('--up-to', String(r.upTo));
      break;
  }
  if (r.out) args.push('--out', r.out);
  args.push('--json');
  return args;
}

export function booksArgs(trace: string): string[] {
  return ['-m', 'prodture.cli', 'events', 'books', trace, '--json'];
}

/** The fetched traces from the command's stdout; throws with a one-line reason otherwise. */
export function parseFetched(stdout: string): FetchedTrace[] {
  let data: unknown;
  try {
    data = JSON.parse(stdout);
  } catch {
    throw new Error('prodture events fetch did not answer JSON; is prodture up to date in this interpreter?');
  }
  if (!Array.isArray(data) || !data.every((d) => d && typeof d.path === 'string')) {
    throw new Error('prodture events fetch answered an unexpected shape');
  }
  return data as FetchedTrace[];
}

/** Which fetched trace to open first: the first that failed (the one to debug), else the first. */
export function traceToOpen(traces: FetchedTrace[]): FetchedTrace | undefined {
  return traces.find((t) => !t.ok) ?? traces[0];
}

/** A Markdown page of a trace's event books: stream, sequence, event type, ids. */
export function renderBooks(traceName: string, books: EventBookView[]): string {
  const lines = [`# Event books of ${traceName}`, ''];
  if (books.length === 0) lines.push('No event books in this trace (no LoadStream / AppendStream effects).');
  for (const b of books) {
    lines.push(`## Effect #${b.effect}: ${b.kind} ${b.domain}/${b.root} (${b.pages.length} event${b.pages.length === 1 ? '' : 's'})`, '');
    if (b.pages.length === 0) continue;
    lines.push('| sequence | event type | correlation id | causation id |', '| ---: | --- | --- | --- |');
    for (const p of b.pages) {
      lines.push(`| ${p.sequence} | \`${p.type}\` | ${p.correlation_id || ''} | ${p.causation_id || ''} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** The first line of a failed command's stderr ("prodture: ..."), for an error message. */
export function firstErrorLine(stderr: string, code: number | null): string {
  const line = stderr.split('\n').find((l) => l.trim());
  return line ? line.trim() : `prodture events exited with code ${code}`;
}
