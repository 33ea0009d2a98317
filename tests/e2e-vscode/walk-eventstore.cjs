// End-to-end walk of the event-store path in a real VS Code (code-server), driven by playwright-core:
// run the poker service on its SQLite event store, "Prodture: Fetch from Event Store…" a rejected
// command's flow by correlation id, see the fetched trace in the viewer and its event books, then
// debug it: a breakpoint in an @applies reducer of the fetched history hits, Step Over, Step Back.
// Started by scripts/vscode-e2e/run.sh with E2E_WALKS=walk-eventstore.cjs E2E_WORKSPACE_TRUST=false and
// E2E_WORKSPACE=examples/poker (see tests/e2e-vscode/README.md). Prints `name: value` figures.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set (run scripts/vscode-e2e/run.sh)`);
  return v;
};
const URL = env('E2E_URL');
const WORKSPACE = env('E2E_WORKSPACE');
const ARTIFACTS = env('E2E_ARTIFACTS');
const PYTHON = env('E2E_PYTHON');
const CHROMIUM = env('E2E_CHROMIUM', '/usr/bin/chromium');
const { chromium } = require(env('E2E_PLAYWRIGHT'));
const TOTAL_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 300_000);
const STOP_TIMEOUT_MS = 30_000;

const PLAYER_REL = 'poker/player.py';
const PLAYER_FILE = path.join(WORKSPACE, PLAYER_REL);
const FLOW_REL = 'poker/flow.py';
const FLOW_FILE = path.join(WORKSPACE, FLOW_REL);
const CORRELATION_ID = 'bet-8';
const FETCHED_NAME = '01-handle_player_command.prodtrace';

const figures = {};
const results = [];
let shotNo = 0;
let page;
let browser;

function log(...a) {
  console.log('[walk-eventstore]', ...a);
}

function lineOf(file, needle) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`"${needle}" not found in ${file}`);
  return i + 1;
}
async function shot(name) {
  const file = path.join(ARTIFACTS, `${String(++shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

async function stage(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false, error: e });
    log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    try {
      await shot(`FAILED-${name.replace(/[^a-z0-9]+/gi, '-')}`);
    } catch {
      /* page gone */
    }
    throw e;
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

async function until(fn, what, timeout = 10_000, every = 50) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      if (e && e.fatal) throw e;
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await page.waitForTimeout(every);
  }
}

// ---------------------------------------------------------------- workbench helpers

async function quickInput(prefixText) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input').first();
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(prefixText);
  await page.waitForTimeout(150);
  return input;
}

async function runCommand(title) {
  await quickInput(`>${title}`);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  await row.waitFor({ state: 'visible', timeout: 10_000 });
  await page.keyboard.press('Enter');
}

async function openFile(rel) {
  await quickInput(rel);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: path.basename(rel) }).first();
  await row.waitFor({ state: 'visible', timeout: 10_000 });
  await page.keyboard.press('Enter');
  await page.locator(`.tab[aria-label^="${path.basename(rel)}"]`).first().waitFor({ timeout: 10_000 });
}

async function gotoLine(n) {
  await quickInput(`:${n}`);
  await page.waitForTimeout(150);
  await page.keyboard.press('Enter');
  await until(async () => (await cursorLine()) === n, `cursor on line ${n}`, 5_000);
}

async function cursorLine() {
  const t = await page.locator('.statusbar-item[id="status.editor.selection"]').first().innerText({ timeout: 2_000 });
  const m = /Ln (\d+)/.exec(t);
  return m ? Number(m[1]) : undefined;
}

async function explorerRow(name) {
  return page.locator(`.explorer-folders-view .monaco-list-row[aria-label="${name}"]`).first();
}

/** The frame of the trace viewer showing `fileName` (webviews are nested iframes). */
async function viewerFrame(fileName) {
  for (const f of page.frames()) {
    try {
      const ok = await f.evaluate((name) => {
        const r = document.getElementById('prodture-viewer');
        return !!r && (r.dataset.state !== 'ready' || document.body.innerText.includes(name));
      }, fileName);
      if (ok) return f;
    } catch {
      /* detached or cross-origin frame */
    }
  }
  return undefined;
}

async function debugToolbarButton(label) {
  const b = page.locator(`.debug-toolbar .action-label[aria-label^="${label}"]`).first();
  await b.waitFor({ state: 'visible', timeout: 10_000 });
  return b;
}

/** What the debugger shows now: the stop reason and top frame from Call Stack, the position from our status bar item. */
async function debugState() {
  return page.evaluate(() => {
    const header = [...document.querySelectorAll('.pane-header')].find((h) => /^Call Stack/.test(h.getAttribute('aria-label') || ''));
    const msg = header ? header.querySelector('.call-stack-state-message') : null;
    const rows = [...document.querySelectorAll('.debug-call-stack .monaco-list-row')];
    const thread = rows.find((r) => r.querySelector('.thread'));
    const frame = rows.find((r) => r.querySelector('.stack-frame'));
    let state = msg ? msg.textContent.trim() : '';
    if (thread) state = state || ((thread.querySelector('.state') || thread).textContent || '').trim();
    let line;
    let fn = '';
    if (frame) {
      const m = /line (\d+)/.exec(frame.getAttribute('aria-label') || '');
      line = m ? Number(m[1]) : undefined;
      fn = ((frame.querySelector('.expression') || frame).textContent || '').trim();
    }
    const sb = [...document.querySelectorAll('.statusbar-item')].find((e) => /effect \d+\/\d+/.test(e.textContent || ''));
    const status = sb ? sb.textContent.trim() : '';
    const m2 = /effect (\d+)\/(\d+) · (next #(\d+)|end) · step (\d+)/.exec(status);
    // its aria-label ends with "..., service.py line L"
    const aria = sb ? [sb, ...sb.querySelectorAll('[aria-label]')].map((e) => e.getAttribute('aria-label') || '').join(' ') : '';
    const m3 = /line (\d+)/.exec(aria);
    return {
      positionLine: m3 ? Number(m3[1]) : undefined,
      paused: !!frame && !/running/i.test(state),
      state,
      line,
      fn,
      status,
      effect: m2 ? Number(m2[1]) : undefined,
      nextEffect: m2 ? (m2[4] ? Number(m2[4]) : null) : undefined,
      step: m2 ? Number(m2[5]) : undefined,
    };
  });
}

/** Wait for a stop different from `before` (by step), paused, with a top frame. */
async function waitStop(before, what, timeout = STOP_TIMEOUT_MS) {
  return until(
    async () => {
      const s = await debugState();
      if (!s.paused || s.line === undefined || s.step === undefined) return false;
      if (before && s.step === before.step && s.line === before.line && s.state === before.state) return false;
      // the position event and the Call Stack view update separately: wait until they agree
      if (s.positionLine !== undefined && s.positionLine !== s.line) return false;
      return s;
    },
    what,
    timeout,
    30,
  );
}

async function variables() {
  return page.evaluate(() =>
    [...document.querySelectorAll('.debug-variables .monaco-list-row')].map((r) => {
      // rows are labelled "NAME, value VALUE" (variables) or "Scope NAME" (scopes)
      const label = r.getAttribute('aria-label') || '';
      const m = /^(.*?), value (.*)$/s.exec(label);
      return {
        text: r.textContent.trim(),
        name: m ? m[1] : '',
        value: m ? m[2] : '',
        scope: /^Scope /.test(label),
        expanded: r.getAttribute('aria-expanded'),
        label,
      };
    }),
  );
}

async function ensurePaneExpanded(title) {
  const header = page.locator(`.pane-header[aria-label^="${title}"]`).first();
  await header.waitFor({ timeout: 10_000 });
  if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
  return header;
}

async function ensurePaneCollapsed(title) {
  const header = page.locator(`.pane-header[aria-label^="${title}"]`).first();
  if ((await header.count()) && (await header.getAttribute('aria-expanded')) === 'true') await header.click();
}

/** The row of an effect (by type name) in the Replay Timeline view. */
function timelineRow(effectType) {
  return page
    .locator('.pane', { has: page.locator('.pane-header[aria-label^="Replay Timeline"]') })
    .locator('.monaco-list-row', { has: page.locator('.monaco-highlighted-label, .label-name', { hasText: effectType }) })
    .first();
}

async function timelineRows() {
  return page.evaluate(() => {
    const header = [...document.querySelectorAll('.pane-header')].find((h) => /Replay Timeline/i.test(h.getAttribute('aria-label') || h.textContent));
    const pane = header ? header.closest('.pane') : null;
    if (!pane) return [];
    return [...pane.querySelectorAll('.monaco-list-row')].map((r) => r.getAttribute('aria-label') || r.textContent.trim());
  });
}

// ---------------------------------------------------------------- the walk

async function answerInput(text) {
  const input = page.locator('.quick-input-widget input').first();
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(text);
  await page.waitForTimeout(150);
  await page.keyboard.press('Enter');
  await page.waitForTimeout(300);
}

async function pickItem(label) {
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: label }).first();
  await row.waitFor({ state: 'visible', timeout: 10_000 });
  await row.click();
  await page.waitForTimeout(300);
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const reducerLine = lineOf(PLAYER_FILE, 'self.bank -= event.amount');
  const handlesLine = lineOf(PLAYER_FILE, 'if command.amount > self.chips:');
  const pmLine = lineOf(FLOW_FILE, 'self.record(HandOpened(');
  log(`FundsReserved reducer on line ${reducerLine}`);
  // production ran: the poker service on its SQLite event store (var/events.db)
  const run = execFileSync(PYTHON, ['run_table.py'], { cwd: WORKSPACE, encoding: 'utf8', timeout: 120_000 });
  log(run.split('\n').filter((l) => /REJECTED/.test(l)).join(' | '));
  fs.rmSync(path.join(WORKSPACE, 'fetched', CORRELATION_ID), { recursive: true, force: true });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.setDefaultTimeout(15_000);

  await stage('workbench loads with the event store commands', async () => {
    await page.goto(URL);
    await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: 60_000 });
    const want = ['Prodture: Fetch from Event Store…', 'Prodture: Show Event Books'];
    await until(
      async () => {
        await quickInput('>Prodture');
        await page.waitForTimeout(300);
        const labels = await page.locator('.quick-input-list .monaco-list-row').allInnerTexts();
        await page.keyboard.press('Escape');
        return want.every((t) => labels.some((l) => l.includes(t))) ? labels : false;
      },
      'the event store commands in the command palette',
      30_000,
      500,
    );
    await shot('workbench');
  });

  let viewer;
  await stage('Fetch from Event Store… by correlation id opens the fetched trace in the viewer', async () => {
    const t0 = Date.now();
    await runCommand('Prodture: Fetch from Event Store…');
    await answerInput(`sqlite:///${path.join(WORKSPACE, 'var', 'events.db')}`);
    await pickItem('A flow, by correlation id');
    await answerInput(CORRELATION_ID);
    viewer = await until(async () => {
      const f = await viewerFrame(FETCHED_NAME);
      if (!f) return false;
      const st = await f.evaluate(() => {
        const r = document.getElementById('prodture-viewer');
        return r.dataset.state === 'error' ? 'error: ' + r.innerText : r.dataset.painted === 'true' ? 'painted' : '';
      });
      if (st.startsWith('error')) throw Object.assign(new Error(st), { fatal: true });
      return st === 'painted' ? f : false;
    }, 'the fetched trace in the viewer', 60_000, 50);
    figures.es_fetch_to_viewer_s = ((Date.now() - t0) / 1000).toFixed(2);
    const text = await viewer.evaluate(() => document.getElementById('prodture-viewer').innerText);
    log('viewer:', JSON.stringify(text.slice(0, 400)));
    assert(/handle_player_command/.test(text), 'the handler is shown');
    assert(/LoadStream/.test(text) && /EventBook\(domain='player', root='p-8'/.test(text), 'the LoadStream effect shows the event book of player/p-8');
    assert(/InsufficientChips/.test(text), 'the outcome shows the rejection');
    assert(fs.existsSync(path.join(WORKSPACE, 'fetched', CORRELATION_ID, FETCHED_NAME)), 'the trace was written under fetched/');
    await shot('fetched-trace-in-viewer');
  });

  await stage('Show Event Books lists stream, sequences and event types', async () => {
    await page.locator(`.tab[aria-label^="${FETCHED_NAME}"]`).first().click();
    await runCommand('Prodture: Show Event Books');
    const md = await until(async () => {
      const t = await page.locator('.monaco-editor .view-lines').allInnerTexts();
      // the editor renders spaces as non-breaking spaces
      return t.map((x) => x.replace(/\u00a0/g, ' ')).find((x) => /Event books of/.test(x)) || false;
    }, 'the event books document', 30_000, 100);
    log('event books:', JSON.stringify(md.slice(0, 300)));
    assert(/loaded player\/p-8 \(3 events\)/.test(md), 'the loaded book of player/p-8 with 3 events');
    assert(/poker\.FundsReserved/.test(md), 'its event types');
    await shot('event-books');
  });

  let stop;
  await stage('a breakpoint in an @applies reducer of the fetched history hits', async () => {
    await openFile(PLAYER_REL);
    await gotoLine(reducerLine);
    await page.keyboard.press('F9');
    await gotoLine(handlesLine);
    await page.keyboard.press('F9');
    await until(async () => (await page.locator('.monaco-editor .codicon-debug-breakpoint').count()) >= 2, 'two breakpoints', 5_000);
    await runCommand('View: Show Run and Debug');
    await page.locator(`.tab[aria-label^="${FETCHED_NAME}"]`).first().click();
    viewer = await until(() => viewerFrame(FETCHED_NAME), 'the viewer frame');
    const t0 = Date.now();
    await viewer.locator('#debug-button').click();
    stop = await waitStop(undefined, 'the breakpoint in the reducer');
    figures.es_debug_to_reducer_s = ((Date.now() - t0) / 1000).toFixed(2);
    log('stop:', JSON.stringify(stop));
    assert(stop.line === reducerLine, `stopped on the reducer line ${reducerLine} (got ${stop.line})`);
    assert(/_reserved/.test(stop.fn), `in Player._reserved (${stop.fn})`);
    await shot('reducer-breakpoint');
  });

  await stage('Step Over, then Step Back returns to the reducer line', async () => {
    await (await debugToolbarButton('Step Over')).click();
    const over = await waitStop(stop, 'a stop after Step Over');
    assert(over.step > stop.step, `the step advanced (${stop.step} -> ${over.step})`);
    await (await debugToolbarButton('Step Back')).click();
    const back = await waitStop(over, 'a stop after Step Back');
    log('after step back:', JSON.stringify(back));
    assert(back.line === reducerLine && back.step === stop.step, `back on line ${reducerLine} at step ${stop.step} (got line ${back.line}, step ${back.step})`);
    await shot('step-back-in-reducer');
    stop = back;
  });

  await stage('Continue: the breakpoint in the @handles method hits', async () => {
    await (await debugToolbarButton('Continue')).click();
    const s = await waitStop(stop, 'the breakpoint in place_bet');
    log('handles stop:', JSON.stringify(s));
    assert(s.line === handlesLine && /place_bet/.test(s.fn), `stopped in Player.place_bet line ${handlesLine} (got ${s.fn} ${s.line})`);
    await shot('handles-breakpoint');
    await page.keyboard.press('Shift+F5');
    await until(async () => (await page.locator('.debug-toolbar').count()) === 0 || !(await page.locator('.debug-toolbar').first().isVisible()), 'the session to end', 15_000);
  });

  await stage('a fetched flow: a breakpoint in the process manager hits, Step Back works', async () => {
    await runCommand('Prodture: Fetch from Event Store…');
    await answerInput(`sqlite:///${path.join(WORKSPACE, 'var', 'events.db')}`);
    await pickItem('A flow, by correlation id');
    await answerInput('hand-6');
    const pmTrace = '02-HandFlow.handle.prodtrace';
    await until(() => fs.existsSync(path.join(WORKSPACE, 'fetched', 'hand-6', pmTrace)), 'the fetched flow', 60_000, 200);
    // focus the workbench, not the webview the fetch opened (it would keep the keyboard)
    await page.keyboard.press('Escape');
    await page.locator('.tab[aria-label^="01-handle_player_command.prodtrace"]').first().click();
    await page.waitForTimeout(500);
    await shot('before-quick-open');
    await quickInput(FLOW_REL);
    const flowRow = page.locator('.quick-input-list .monaco-list-row', { hasText: 'flow.py' }).first();
    await flowRow.waitFor({ state: 'visible', timeout: 30_000 });
    await page.keyboard.press('Enter');
    await page.locator('.tab[aria-label^="flow.py"]').first().waitFor({ timeout: 10_000 });
    await gotoLine(pmLine);
    await page.keyboard.press('F9');
    await openFile(`fetched/hand-6/${pmTrace}`);
    const pmViewer = await until(async () => {
      const f = await viewerFrame(pmTrace);
      return f && (await f.evaluate(() => document.getElementById('prodture-viewer').dataset.painted === 'true')) ? f : false;
    }, 'the process manager trace in the viewer', 30_000);
    await pmViewer.locator('#debug-button').click();
    const s = await waitStop(undefined, 'the breakpoint in HandFlow.open');
    log('pm stop:', JSON.stringify(s));
    assert(s.line === pmLine && /open/.test(s.fn), `stopped in HandFlow.open line ${pmLine} (got ${s.fn} ${s.line})`);
    await (await debugToolbarButton('Step Over')).click();
    const over = await waitStop(s, 'a stop after Step Over');
    await (await debugToolbarButton('Step Back')).click();
    const back = await waitStop(over, 'a stop after Step Back');
    assert(back.line === pmLine && back.step === s.step, `back on line ${pmLine} at step ${s.step} (got line ${back.line}, step ${back.step})`);
    await shot('process-manager-step-back');
    await page.keyboard.press('Shift+F5');
  });
}

const killer = setTimeout(() => {
  log(`the walk took longer than ${TOTAL_TIMEOUT_MS} ms: giving up`);
  finish(1);
}, TOTAL_TIMEOUT_MS);

async function finish(code) {
  clearTimeout(killer);
  try {
    if (browser) await browser.close();
  } catch {
    /* already closed */
  }
  for (const [k, v] of Object.entries(figures)) if (v !== undefined) console.log(`${k}: ${v}`);
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log(`screenshots: ${ARTIFACTS}`);
  console.log(`vscode-e2e-eventstore: ${passed} passed, ${failed} failed`);
  process.exit(code || (failed ? 1 : 0));
}

main().then(
  () => finish(0),
  (e) => {
    if (!results.some((r) => !r.ok)) results.push({ name: 'setup', ok: false, error: e });
    log(`walk stopped: ${e && e.message ? e.message : e}`);
    finish(1);
  },
);
