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

const { createWalk, env, lineOf, assert } = require('./workbench.cjs');

const URL = env('E2E_URL');
const WORKSPACE = env('E2E_WORKSPACE');
const ARTIFACTS = env('E2E_ARTIFACTS');
const PYTHON = env('E2E_PYTHON');
const TOTAL_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 300_000);

const walk = createWalk({
  tag: 'walk-eventstore',
  summary: 'vscode-e2e-eventstore',
  artifacts: ARTIFACTS,
  timeoutMs: TOTAL_TIMEOUT_MS,
  untilMs: 10_000,
  stopTimeoutMs: 30_000,
  defaultTimeoutMs: 15_000,
});
const { figures, log, shot, stage, until, quickInput, runCommand, openFile, gotoLine, viewerFrame, debugToolbarButton, waitStop } = walk;
let page;

const PLAYER_REL = 'poker/player.py';
const PLAYER_FILE = path.join(WORKSPACE, PLAYER_REL);
const FLOW_REL = 'poker/flow.py';
const FLOW_FILE = path.join(WORKSPACE, FLOW_REL);
const CORRELATION_ID = 'bet-8';
const FETCHED_NAME = '01-handle_player_command.prodtrace';

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

  page = await walk.launch();

  await stage('workbench loads with the event store commands', async () => {
    await page.goto(URL);
    await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: 60_000 });
    const want = ['Prodture: Fetch from Event Store…', 'Prodture: Show Event Books'];
    await until(
      () => walk.commandsListed('Prodture', want),
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

walk.run(main);
