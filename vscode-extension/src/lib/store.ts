// The trace store as the extension sees it: `prodture list --json` rows, the quick pick built
// from them, and the vscode:// link that opens a trace. Plain logic (no vscode import): unit-tested.

/** One row of `prodture list --json` (protocol/trace-store.md). */
export interface StoredTrace {
  trace_id: string;
  handler: string;
  started_at: string | null;
  duration_ms: number | null;
  ok: boolean | null;
  error_type: string;
  error_message: string;
  failed_effect: number | null;
  host: string;
  service: string;
  location?: string; // a directory store's file
}

export interface StorePickItem {
  label: string;
  description: string;
  detail: string;
  traceId: string;
}

const ID = /^[0-9a-fA-F-]{1,64}$/;

export function isTraceId(text: string): boolean {
  return ID.test(text.trim());
}

/** `postgresql://user:secret@host/db` → `postgresql://user:***@host/db` (and `password=…`). */
export function maskPassword(text: string): string {
  return text.replace(/(\/\/[^:/@\s]*):[^@/\s]*@/g, '$1:***@').replace(/(password\s*=\s*)('[^']*'|[^\s&;]+)/gi, '$1***');
}

/**
 * Whether a JSON document is an OpenTelemetry export holding prodture executions (spans exported
 * with `OtelRecorder(payloads=True)`): the viewer then offers to import it.
 */
export function looksLikeProdtureOtlp(fileName: string, text: string): boolean {
  return /\.(json|jsonl|ndjson)$/i.test(fileName) && /"resource_?[sS]pans"/.test(text) && text.includes('prodture.header.msgpack');
}

/** The command line of the CLI for `args`, with `--store` when the setting names one. */
export function cliArgs(args: string[], store: string | undefined): string[] {
  const out = ['-m', 'prodture.cli', ...args];
  if (store && store.trim()) out.push('--store', store.trim());
  return out;
}

/** Rows from `prodture list --json`, or an Error naming what was wrong. */
export function parseListing(stdout: string): StoredTrace[] | Error {
  let rows: unknown;
  try {
    rows = JSON.parse(stdout);
  } catch {
    return new Error(`prodture list printed something that is not JSON: ${stdout.slice(0, 120)}`);
  }
  if (!Array.isArray(rows)) return new Error('prodture list --json did not print a list');
  return rows.filter((r): r is StoredTrace => !!r && typeof r === 'object' && typeof (r as StoredTrace).trace_id === 'string');
}

/** `2026-11-30T10:42:07.123+00:00` → `2026-11-30 10:42:07 UTC`. */
export function shortTime(iso: string | null): string {
  if (!iso) return 'unknown time';
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : iso;
}

/** Quick pick items: handler and error on the label, time and host beside, the id below. */
export function pickItems(rows: StoredTrace[]): StorePickItem[] {
  return rows.map((r) => {
    const handler = r.handler.includes(':') ? r.handler.split(':').pop() || r.handler : r.handler;
    const error = r.ok === false ? `${(r.error_type || 'Error').split('.').pop()}: ${r.error_message}` : r.ok ? 'ok' : 'incomplete';
    const where = [shortTime(r.started_at), r.host, r.service].filter(Boolean).join(' · ');
    const at = r.failed_effect ? ` at effect #${r.failed_effect}` : '';
    return {
      label: `${r.ok === false ? '$(error)' : '$(pass)'} ${handler} — ${error}`,
      description: where,
      detail: `${r.trace_id}  ${r.handler}${at}`,
      traceId: r.trace_id,
    };
  });
}

/** The 12-digit ids `prodture fetch` lists on stderr for an ambiguous prefix. */
export function ambiguousCandidates(stderr: string): string[] {
  if (!/matches .* traces; give more characters/.test(stderr)) return [];
  return stderr
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((id) => !!id && isTraceId(id));
}

export interface TraceLink {
  id: string;
  debug: boolean;
}

/**
 * `vscode://prodture.prodture/open?id=<trace id>[&debug=1]` → what to open. A link comes from
 * outside (an alert, a dashboard): only an id and the debug flag are taken from it, never a
 * store, a path or a command.
 */
export function parseTraceLink(path: string, query: string): TraceLink | Error {
  if (path.replace(/^\/+/, '') !== 'open') return new Error(`unknown prodture link "${path}": use vscode://prodture.prodture/open?id=TRACE_ID`);
  const params = new URLSearchParams(query);
  const id = (params.get('id') || params.get('trace') || '').trim();
  if (!id) return new Error('the prodture link has no id: use vscode://prodture.prodture/open?id=TRACE_ID');
  if (!isTraceId(id)) return new Error(`"${id.slice(0, 40)}" is not a trace id (hexadecimal digits)`);
  const debug = ['1', 'true', 'yes'].includes((params.get('debug') || '').toLowerCase());
  return { id: id.toLowerCase(), debug };
}
