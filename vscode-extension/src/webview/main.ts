// The trace viewer's page (runs in the webview). Virtualized effect list: only the rows in view
// are in the DOM; rows are fetched page by page from the extension (which asks the language server).
import { FromWebview, SummaryEffect, ToWebview, TraceSummary } from '../lib/protocol';
import type { SetupView } from '../lib/setup';
import { PageCache, scrollTopFor, visibleRange } from '../lib/virtual';
import { clip, formatDuration } from './format';

declare function acquireVsCodeApi(): { postMessage(m: FromWebview): void; getState(): unknown; setState(s: unknown): void };

const vscode = acquireVsCodeApi();
const ROW_HEIGHT = 24;
const PAGE_SIZE = 200;

const root = document.getElementById('prodture-viewer') as HTMLDivElement;
let summary: TraceSummary | undefined;
let cache = new PageCache<SummaryEffect>(PAGE_SIZE, 60);
let total = 0;
let seqBase = 0; // seq of row 0
let failedIndex = -1;
let selected = -1;
let position: { active: boolean; nextEffect: number | null; effect: number | null } = { active: false, nextEffect: null, effect: null };
let scroller: HTMLDivElement | undefined;
let spacer: HTMLDivElement | undefined;
let detail: HTMLDivElement | undefined;
let paintedOnce = false;
/** Replay and Debug run the folder's code: off while the folder is untrusted (until told otherwise) */
let trust: { trusted: boolean; reason: string | null } = { trusted: false, reason: null };
let scheduled = false;

function post(m: FromWebview): void {
  vscode.postMessage(m);
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(label: string, id: string, title: string, onClick: () => void, primary = false): HTMLButtonElement {
  const b = el('button', primary ? 'primary' : 'secondary', label);
  b.id = id;
  b.title = title;
  b.addEventListener('click', onClick);
  return b;
}

function indexOfSeq(seq: number | null | undefined): number {
  if (seq === null || seq === undefined) return -1;
  const i = seq - seqBase;
  return i >= 0 && i < total ? i : -1;
}

function renderSummary(s: TraceSummary, fileName: string): void {
  summary = s;
  total = s.total ?? s.effects.length;
  cache = new PageCache<SummaryEffect>(PAGE_SIZE, 60);
  cache.put(s.offset ?? 0, s.effects);
  seqBase = s.effects.length ? s.effects[0].seq - (s.offset ?? 0) : 0;
  failedIndex = indexOfSeq(s.failedEffect ?? null);
  if (failedIndex < 0) {
    const f = s.effects.findIndex((e) => !e.ok);
    if (f >= 0) failedIndex = (s.offset ?? 0) + f;
  }
  root.textContent = '';
  root.dataset.state = 'ready';
  root.dataset.outcome = s.outcome ? (s.outcome.ok ? 'success' : 'failure') : 'unknown';

  // header
  const header = el('header');
  const title = el('div', 'title');
  title.append(el('span', 'handler', s.header?.handler ?? '(unknown handler)'));
  const badge = el('span', `badge ${s.outcome ? (s.outcome.ok ? 'ok' : 'fail') : 'partial'}`, s.outcome ? (s.outcome.ok ? 'Success' : 'Failure') : 'No outcome (trace incomplete)');
  badge.id = 'outcome-badge';
  title.append(badge);
  header.append(title);
  const meta = el('div', 'meta');
  const bits = [fileName, s.header?.traceId && `trace ${s.header.traceId}`, s.header?.startedAt, s.header?.python && `Python ${s.header.python}`, `${total} effect${total === 1 ? '' : 's'}`, s.complete ? '' : 'incomplete trace'].filter(Boolean) as string[];
  meta.textContent = bits.join(' · ');
  header.append(meta);
  const actions = el('div', 'actions');
  actions.append(button('▶ Debug', 'debug-button', 'Debug this trace: replay the handler under the debugger (breakpoints, step back)', () => post({ type: 'debug' }), true));
  actions.append(button('↻ Replay', 'replay-button', 'Replay the trace against the current code and report divergences', () => post({ type: 'replay' })));
  if (failedIndex >= 0) {
    actions.append(button(`Go to failing effect #${failedIndex + seqBase}`, 'goto-failed', 'Scroll to the effect that failed', () => reveal(failedIndex, true)));
  }
  header.append(actions);
  const trustNote = el('div', 'trust-note');
  trustNote.id = 'trust-reason';
  trustNote.setAttribute('role', 'status');
  header.append(trustNote);
  root.append(header);

  // input and outcome
  const io = el('div', 'io');
  const inputSec = el('section', 'input');
  inputSec.append(el('h3', undefined, 'Input'), el('pre', undefined, s.input ?? '(none)'));
  io.append(inputSec);
  const outSec = el('section', `outcome ${s.outcome ? (s.outcome.ok ? 'ok' : 'fail') : 'partial'}`);
  outSec.id = 'outcome';
  outSec.append(el('h3', undefined, 'Outcome'));
  if (!s.outcome) {
    outSec.append(el('pre', undefined, 'The trace ends before the handler finished (the process stopped while recording).'));
  } else if (s.outcome.ok) {
    outSec.append(el('pre', undefined, `Success: ${s.outcome.value ?? ''}`));
  } else {
    outSec.append(el('pre', 'error', `Failure: ${s.outcome.error ?? ''}`));
    if (s.outcome.traceback) {
      const d = el('details');
      d.append(el('summary', undefined, 'Traceback'), el('pre', 'traceback', s.outcome.traceback));
      outSec.append(d);
    }
  }
  io.append(outSec);
  root.append(io);

  // timeline
  const tl = el('section', 'timeline');
  tl.append(el('h3', undefined, `Effects (${total})`));
  const cols = el('div', 'row head');
  for (const [c, t] of [['seq', '#'], ['type', 'Effect'], ['req', 'Request'], ['res', 'Result / error'], ['dur', 'Duration']]) cols.append(el('span', c, t));
  tl.append(cols);
  scroller = el('div', 'scroller');
  scroller.id = 'effects';
  scroller.setAttribute('role', 'grid');
  scroller.setAttribute('aria-rowcount', String(total));
  scroller.tabIndex = 0;
  spacer = el('div', 'spacer');
  spacer.style.height = `${total * ROW_HEIGHT}px`;
  scroller.append(spacer);
  scroller.addEventListener('scroll', schedule, { passive: true });
  scroller.addEventListener('keydown', onKey);
  tl.append(scroller);
  if (total === 0) tl.append(el('div', 'empty', 'The handler performed no effects.'));
  root.append(tl);

  detail = el('div', 'detail');
  detail.id = 'detail';
  root.append(detail);

  applyTrust();
  new ResizeObserver(schedule).observe(scroller);
  paint();
  if (failedIndex >= 0) {
    selected = failedIndex;
    reveal(failedIndex, false);
  }
  showDetail();
}

const RUNS_CODE = ['debug-button', 'replay-button'];
const BUTTON_TITLES: Record<string, string> = {
  'debug-button': 'Debug this trace: replay the handler under the debugger (breakpoints, step back)',
  'replay-button': 'Replay the trace against the current code and report divergences',
};

/** Replay and Debug on or off, with the reason and a way to trust the folder when off. */
function applyTrust(): void {
  for (const id of RUNS_CODE) {
    const b = document.getElementById(id) as HTMLButtonElement | null;
    if (!b) continue;
    b.disabled = !trust.trusted;
    b.title = trust.trusted ? BUTTON_TITLES[id] : (trust.reason ?? '');
    if (trust.trusted) b.removeAttribute('aria-describedby');
    else b.setAttribute('aria-describedby', 'trust-reason');
  }
  const note = document.getElementById('trust-reason');
  if (!note) return;
  note.textContent = '';
  note.hidden = trust.trusted;
  if (trust.trusted) return;
  note.append(el('span', 'reason', trust.reason ?? ''), el('span', 'muted', ' '));
  const a = el('a', 'manage-trust', 'Manage Workspace Trust');
  a.id = 'manage-trust';
  a.href = '#';
  a.addEventListener('click', (ev) => {
    ev.preventDefault();
    post({ type: 'manageTrust' });
  });
  note.append(a);
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    paint();
  });
}

function paint(): void {
  if (!scroller || !spacer) return;
  const range = visibleRange(scroller.scrollTop, scroller.clientHeight || 400, ROW_HEIGHT, total, 8);
  for (const page of cache.missing(range)) post({ type: 'fetch', offset: page * PAGE_SIZE, limit: PAGE_SIZE });
  const current = indexOfSeq(position.active ? position.nextEffect : null);
  const frag = document.createDocumentFragment();
  for (let i = range.start; i < range.end; i++) {
    const e = cache.get(i);
    const row = el('div', 'row');
    row.style.transform = `translateY(${i * ROW_HEIGHT}px)`;
    row.dataset.index = String(i);
    row.setAttribute('role', 'row');
    row.setAttribute('aria-rowindex', String(i + 1));
    if (!e) {
      row.classList.add('placeholder');
      row.append(el('span', 'seq', `#${i + seqBase}`), el('span', 'type', '…'));
    } else {
      row.dataset.seq = String(e.seq);
      if (!e.ok) row.classList.add('failed');
      if (i === failedIndex) row.classList.add('failing');
      if (i === current) row.classList.add('current');
      if (i === selected) row.classList.add('selected');
      row.append(
        el('span', 'seq', `${i === current ? '▶ ' : ''}#${e.seq}`),
        el('span', 'type', e.type),
        el('span', 'req', clip(e.request, 120)),
        el('span', `res${e.ok ? '' : ' err'}`, e.ok ? clip(e.result, 120) : `✗ ${clip(e.error, 118)}`),
        el('span', 'dur', formatDuration(e.durationMs)),
      );
      row.title = `${e.type}${e.path ? ` — ${e.path}${e.line ? `:${e.line}` : ''}` : ''}\n(double-click: open the call site)`;
    }
    frag.append(row);
  }
  spacer.replaceChildren(frag);
  const ready = total === 0 || (range.end > range.start && cache.get(range.start) !== undefined);
  if (!paintedOnce && ready) {
    paintedOnce = true;
    root.dataset.painted = 'true';
    post({ type: 'painted', ms: performance.now() });
  }
}

function reveal(index: number, select: boolean): void {
  if (!scroller) return;
  const top = index * ROW_HEIGHT;
  if (top < scroller.scrollTop || top + ROW_HEIGHT > scroller.scrollTop + scroller.clientHeight) {
    scroller.scrollTop = scrollTopFor(index, scroller.clientHeight || 400, ROW_HEIGHT, total);
  }
  if (select) {
    selected = index;
    showDetail();
  }
  schedule();
}

function showDetail(): void {
  if (!detail) return;
  detail.textContent = '';
  const e = selected >= 0 ? cache.get(selected) : undefined;
  if (!e) {
    detail.append(el('div', 'hint', total ? 'Select an effect to see its request and recorded result.' : ''));
    return;
  }
  const h = el('div', 'dhead');
  h.append(el('strong', undefined, `#${e.seq} ${e.type}`), el('span', e.ok ? 'ok' : 'fail', e.ok ? ' ✓ ok' : ' ✗ failed'));
  if (e.durationMs !== null && e.durationMs !== undefined) h.append(el('span', 'muted', ` · ${formatDuration(e.durationMs)}`));
  if (e.path) {
    const a = el('a', 'src', `${e.function ? `${e.function} — ` : ''}${e.path}${e.line ? `:${e.line}` : ''}`);
    a.href = '#';
    a.addEventListener('click', (ev) => {
      ev.preventDefault();
      post({ type: 'open', path: e.path as string, line: e.line });
    });
    h.append(el('span', 'muted', ' · '), a);
  }
  if (position.active) {
    const j = el('a', 'jump', 'Jump here in the debugger');
    j.href = '#';
    j.addEventListener('click', (ev) => {
      ev.preventDefault();
      post({ type: 'jump', seq: e.seq });
    });
    h.append(el('span', 'muted', ' · '), j);
  }
  detail.append(h);
  const grid = el('div', 'kv');
  grid.append(el('span', 'k', 'request'), el('pre', 'v', e.request ?? ''));
  grid.append(el('span', 'k', e.ok ? 'result' : 'error'), el('pre', e.ok ? 'v' : 'v err', (e.ok ? e.result : e.error) ?? ''));
  detail.append(grid);
}

function rowIndexFromEvent(ev: Event): number {
  const row = (ev.target as HTMLElement).closest('.row') as HTMLElement | null;
  return row && row.dataset.index ? Number(row.dataset.index) : -1;
}

document.addEventListener('click', (ev) => {
  const i = rowIndexFromEvent(ev);
  if (i >= 0) {
    selected = i;
    showDetail();
    schedule();
  }
});

document.addEventListener('dblclick', (ev) => {
  const i = rowIndexFromEvent(ev);
  const e = i >= 0 ? cache.get(i) : undefined;
  if (e?.path) post({ type: 'open', path: e.path, line: e.line });
});

function onKey(ev: KeyboardEvent): void {
  if (!scroller) return;
  const page = Math.max(1, Math.floor(scroller.clientHeight / ROW_HEIGHT) - 1);
  const moves: Record<string, number> = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page, Home: -total, End: total };
  if (ev.key in moves) {
    ev.preventDefault();
    const next = Math.max(0, Math.min(total - 1, (selected < 0 ? 0 : selected) + moves[ev.key]));
    reveal(next, true);
  } else if (ev.key === 'Enter' && selected >= 0) {
    const e = cache.get(selected);
    if (e?.path) post({ type: 'open', path: e.path, line: e.line });
  }
}

function showError(message: string, detailText?: string): void {
  root.textContent = '';
  root.dataset.state = 'error';
  const box = el('div', 'errorbox');
  box.append(el('h3', undefined, 'This trace cannot be shown'), el('p', 'error', message));
  if (detailText) box.append(el('pre', undefined, detailText));
  box.append(button('Retry', 'retry-button', 'Ask the language server again', () => post({ type: 'ready' })));
  root.append(box);
}

/** First run: the interpreter cannot serve the trace. Says what is missing and offers the ways out. */
function renderSetup(v: SetupView): void {
  summary = undefined;
  scroller = spacer = detail = undefined;
  root.textContent = '';
  root.dataset.state = 'setup';
  const box = el('div', 'setup');
  box.id = 'setup-panel';
  box.setAttribute('role', 'region');
  box.setAttribute('aria-label', v.title);
  box.append(el('h3', undefined, v.title));
  for (const line of v.lines) box.append(el('p', undefined, line));
  const cmd = el('pre', 'command', v.command);
  cmd.id = 'install-command';
  cmd.title = 'What "Install" types into the terminal';
  box.append(cmd);
  const actions = el('div', 'actions');
  const install = button(v.installLabel, 'install-button', v.installOff ?? `Run in a terminal: ${v.command}`, () => post({ type: 'install' }), true);
  install.disabled = v.installOff !== null || v.installing;
  actions.append(install, button(v.chooseLabel, 'choose-interpreter-button', 'Pick the interpreter prodture runs with (prodture.python)', () => post({ type: 'chooseInterpreter' })));
  box.append(actions);
  if (v.installOff !== null) {
    const reason = el('div', 'install-reason', v.installOff);
    reason.id = 'install-reason';
    reason.setAttribute('role', 'status');
    install.setAttribute('aria-describedby', 'install-reason');
    box.append(reason);
  }
  if (v.installing) {
    const status = el('div', 'install-status', `Installing in the terminal "Install prodture"… the trace shows here when it finishes.`);
    status.id = 'install-status';
    status.setAttribute('role', 'status');
    box.append(status);
  }
  root.append(box);
}

window.addEventListener('message', (ev: MessageEvent<ToWebview>) => {
  const m = ev.data;
  switch (m.type) {
    case 'summary':
      renderSummary(m.summary, m.fileName);
      break;
    case 'page':
      if (m.total !== total && spacer) {
        total = m.total;
        spacer.style.height = `${total * ROW_HEIGHT}px`;
      }
      cache.put(m.offset, m.effects);
      if (selected >= m.offset && selected < m.offset + m.effects.length) showDetail();
      schedule();
      break;
    case 'error':
      if (!summary) showError(m.message, m.detail);
      else {
        const n = el('div', 'notice error', m.message);
        root.prepend(n);
      }
      break;
    case 'setup':
      renderSetup(m.view);
      break;
    case 'trust':
      trust = { trusted: m.trusted, reason: m.reason };
      applyTrust();
      break;
    case 'position': {
      const was = position;
      position = { active: m.active, nextEffect: m.nextEffect, effect: m.effect };
      if (m.active && m.nextEffect !== null && m.nextEffect !== was.nextEffect) {
        const i = indexOfSeq(m.nextEffect);
        if (i >= 0) reveal(i, false);
      }
      if (was.active !== position.active) showDetail();
      schedule();
      break;
    }
  }
});

post({ type: 'ready' });
