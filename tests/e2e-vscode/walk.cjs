// End-to-end walk of the user's path in a real VS Code (code-server), driven by playwright-core.
// Started by scripts/vscode-e2e/run.sh, which sets E2E_* and starts code-server with the .vsix
// installed and examples/checkout open in Restricted Mode (the folder is not trusted yet). The walk
// first checks what Restricted Mode allows (the viewer shows the trace; Replay and Debug are off,
// saying why; saving the handler runs none of its code), then trusts the folder and walks the
// debugging path. Every stage asserts what the screen shows and saves a screenshot in
// E2E_ARTIFACTS. Prints the figures as `name: value` lines.
'use strict';
const fs = require('fs');
const path = require('path');

const { createWalk, env, lineOf, assert, failingCheckoutTrace } = require('./workbench.cjs');

const WORKSPACE = env('E2E_WORKSPACE');
const ARTIFACTS = env('E2E_ARTIFACTS');
const URL = env('E2E_URL');
const TOTAL_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 600_000);
const BIG_TRACE = process.env.E2E_BIG_TRACE || '';
const walk = createWalk({
  tag: 'walk',
  summary: 'vscode-e2e',
  artifacts: ARTIFACTS,
  timeoutMs: TOTAL_TIMEOUT_MS,
  stopTimeoutMs: 90_000,
  beforeFigures: (figures) => {
    figures.vsix_bytes = process.env.E2E_VSIX_BYTES;
  },
});
const { UI_WAIT_MS, figures, log, shot, stage, until } = walk;
const { runCommand, openFile, gotoLine, notificationTexts, clearNotifications, problems, explorerRow, viewerFrame, trustFolder } = walk;
const { debugToolbarButton, debugState, waitStop, variables, ensurePaneExpanded, ensurePaneCollapsed, timelineRow, timelineRows } = walk;
let page;

const HANDLER_REL = 'checkout/service.py';
const HANDLER_FILE = path.join(WORKSPACE, HANDLER_REL);
// The Restricted Mode tripwire: a module of the folder that writes a marker file when imported;
// the walk makes the handler import it (run.sh puts the handler back and removes both on exit).
const MARKER_MODULE = process.env.E2E_MARKER_MODULE || path.join(WORKSPACE, 'checkout', '_e2e_import_marker.py');
const IMPORT_MARKER = process.env.E2E_IMPORT_MARKER || path.join(ARTIFACTS, 'imported.marker');
const MARKER_IMPORT_LINE = `from . import ${path.basename(MARKER_MODULE, '.py')}`;

// ---------------------------------------------------------------- the walk's own helpers

/** The state of the trace viewer's Replay and Debug buttons and of its trust note. */
async function viewerTrustState(frame) {
  return frame.evaluate(() => {
    const b = (id) => {
      const e = document.getElementById(id);
      return e ? { disabled: e.disabled, title: e.title } : null;
    };
    const note = document.getElementById('trust-reason');
    return { replay: b('replay-button'), debug: b('debug-button'), note: note && !note.hidden ? note.innerText : '' };
  });
}

/** Save the active editor and wait until `file` on disk satisfies `saved(text)`. */
async function saveActiveEditor(file, saved) {
  await page.keyboard.press('Control+S');
  await until(() => saved(fs.readFileSync(file, 'utf8')), `${path.basename(file)} to be saved`, UI_WAIT_MS, 100);
}

// ---------------------------------------------------------------- the walk

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const trace = failingCheckoutTrace(WORKSPACE);
  const traceName = path.basename(trace);
  const chargeLine = lineOf(HANDLER_FILE, 'yield ChargeCard(');
  const promoLine = lineOf(HANDLER_FILE, 'yield ApplyPromo(');
  log(`trace ${traceName}; ChargeCard on line ${chargeLine}, ApplyPromo on line ${promoLine}`);

  page = await walk.launch();

  await stage('workbench loads with the extension', async () => {
    await page.goto(URL);
    await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: 60_000 });
    // the extension is installed: its commands are in the palette (contributions arrive once the
    // extension host has scanned the extensions, a moment after the workbench paints)
    const want = ['Prodture: Debug Trace', 'Prodture: Replay Trace', 'Prodture: Show Trace'];
    await until(
      () => walk.commandsListed('Prodture', want),
      'the Prodture commands in the command palette',
      60_000,
      500,
    );
    // the folder opens in Restricted Mode (not trusted yet): VS Code says so in the status bar
    await until(
      async () => (await page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).count()) > 0,
      'the Restricted Mode indicator in the status bar',
      UI_WAIT_MS,
      250,
    );
    await shot('workbench-restricted-mode');
  });

  let actions = 0; // user actions from opening the trace to paused on the failing line, error visible
  let viewer;
  await stage('double-click the failing trace: the viewer shows the failing effect', async () => {
    const folder = await explorerRow('traces');
    if ((await folder.getAttribute('aria-expanded')) !== 'true') await folder.click();
    const row = await explorerRow(traceName);
    await row.waitFor();
    const t0 = Date.now();
    await row.dblclick();
    actions++;
    viewer = await until(async () => {
      const f = await viewerFrame(traceName);
      if (!f) return false;
      const st = await f.evaluate(() => {
        const r = document.getElementById('prodture-viewer');
        return r.dataset.state === 'error' ? 'error: ' + r.innerText : r.dataset.painted === 'true' ? 'painted' : '';
      });
      if (st.startsWith('error')) throw Object.assign(new Error(st), { fatal: true });
      return st === 'painted' ? f : false;
    }, 'the trace viewer to paint', 60_000, 20).catch((e) => {
      throw e;
    });
    figures.viewer_paint_s = ((Date.now() - t0) / 1000).toFixed(2);
    const info = await viewer.evaluate(() => {
      const r = document.getElementById('prodture-viewer');
      const failing = r.querySelector('.row.failing');
      return {
        text: r.innerText,
        outcome: r.dataset.outcome,
        failing: failing ? failing.innerText : null,
        failingBg: failing ? getComputedStyle(failing).backgroundColor : null,
        rows: r.querySelectorAll('.spacer .row').length,
        handler: (r.querySelector('.handler') || {}).textContent,
      };
    });
    log('viewer:', JSON.stringify({ ...info, text: info.text.slice(0, 400) }));
    assert(/place_order/.test(info.handler || ''), `handler shown (${info.handler})`);
    assert(info.outcome === 'failure', `outcome is Failure (${info.outcome})`);
    assert(/Failure/.test(info.text), 'the outcome says Failure');
    assert(info.failing && /ChargeCard/.test(info.failing), `the failing effect ChargeCard is highlighted (${info.failing})`);
    assert(/FREE100/.test(info.text), 'the input / requests show the promo FREE100');
    assert(info.rows >= 4, `the timeline lists the effects (${info.rows} rows)`);
    await shot('viewer-failing-effect');
  });

  await stage('the viewer opens fast once VS Code has shown a webview (re-open)', async () => {
    // the first webview of a fresh browser profile waits for VS Code's webview service worker to
    // install; a user's VS Code has it already — measure a second open as well
    await page.locator(`.tab[aria-label^="${traceName}"]`).first().click();
    await runCommand('View: Close Editor');
    await until(async () => (await page.locator(`.tab[aria-label^="${traceName}"]`).count()) === 0, 'the viewer tab to close', 60_000);
    const row = await explorerRow(traceName);
    const t0 = Date.now();
    await row.dblclick();
    viewer = await until(async () => {
      const f = await viewerFrame(traceName);
      if (!f) return false;
      return (await f.evaluate(() => document.getElementById('prodture-viewer').dataset.painted === 'true')) ? f : false;
    }, 'the trace viewer to paint again', 60_000, 20);
    figures.viewer_paint_warm_s = ((Date.now() - t0) / 1000).toFixed(2);
  });

  await stage('Restricted Mode: the viewer shows the trace, Replay and Debug are disabled with the reason', async () => {
    const st = await until(async () => {
      const t = await viewerTrustState(viewer);
      return t.replay && t.replay.disabled && t.note ? t : false;
    }, 'the viewer to disable Replay', UI_WAIT_MS);
    log('viewer in Restricted Mode:', JSON.stringify(st));
    assert(st.replay.disabled && st.debug.disabled, 'Replay and Debug are disabled');
    assert(/not trusted/.test(st.note) && /Manage Workspace Trust/.test(st.note), `the reason and the way to trust are shown (${st.note})`);
    assert(/not trusted/.test(st.replay.title), `the Replay button's tooltip says why (${st.replay.title})`);
    const text = await viewer.evaluate(() => document.getElementById('prodture-viewer').innerText);
    assert(/Failure/.test(text) && /ChargeCard/.test(text), 'the trace itself is shown');
    await shot('restricted-viewer-replay-disabled');
  });

  await stage('Restricted Mode: the Replay and Debug commands say in one line why they are off', async () => {
    await runCommand('Prodture: Replay Trace');
    const toast = await until(async () => (await notificationTexts()).find((t) => /Replay is off/.test(t)) || false, 'the Restricted Mode notification', UI_WAIT_MS);
    log('replay command:', JSON.stringify(toast));
    assert(/not trusted/.test(toast) && /Manage Workspace Trust/.test(toast), `it says why and how to trust (${toast})`);
    assert(!(await notificationTexts()).some((t) => /Replay of/.test(t)), 'no replay ran');
    await shot('restricted-replay-command');
    await clearNotifications();
    await runCommand('Prodture: Debug Trace');
    const debugToast = await until(async () => (await notificationTexts()).find((t) => /Debug is off/.test(t)) || false, 'the Restricted Mode notification for Debug', UI_WAIT_MS);
    log('debug command:', JSON.stringify(debugToast));
    assert(/not trusted/.test(debugToast) && /Manage Workspace Trust/.test(debugToast), `it says why and how to trust (${debugToast})`);
    assert((await page.locator('.debug-toolbar:visible').count()) === 0, 'no debug session started');
    await clearNotifications();
  });

  let originalHandler;
  await stage('Restricted Mode: saving the handler runs none of its code (no marker), and says why', async () => {
    originalHandler = fs.readFileSync(HANDLER_FILE, 'utf8');
    fs.rmSync(IMPORT_MARKER, { force: true });
    fs.writeFileSync(MARKER_MODULE, `import pathlib\npathlib.Path(${JSON.stringify(IMPORT_MARKER)}).write_text("imported")\n`);
    await openFile(HANDLER_REL);
    // the lenses that run code are replaced by one that only shows, and one that says why
    const lenses = await until(async () => {
      const t = await page.locator('.monaco-editor .codelens-decoration').allInnerTexts();
      return t.some((x) => /not trusted/.test(x)) ? t : false;
    }, 'the Restricted Mode lenses', UI_WAIT_MS);
    log('lenses:', JSON.stringify(lenses));
    assert(lenses.some((x) => /Show latest trace/.test(x)), `a show-only lens (${lenses})`);
    assert(!lenses.some((x) => /Debug latest trace/.test(x)), `no Debug lens (${lenses})`);
    // the handler imports the marker module (a line at the end: every recorded line stays put)
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
    await page.keyboard.type(MARKER_IMPORT_LINE);
    await page.keyboard.press('Escape');
    await saveActiveEditor(HANDLER_FILE, (text) => text.includes(MARKER_IMPORT_LINE));
    // the language server answers the save: a note on the handler instead of a replay
    await runCommand('View: Focus Problems');
    const rows = await until(async () => {
      const r = await problems();
      return r.some((x) => /Quick replay of .* is off/.test(x)) ? r : false;
    }, 'the "quick replay is off" note in Problems', UI_WAIT_MS);
    log('problems:', JSON.stringify(rows));
    const note = rows.find((x) => /Quick replay of .* is off/.test(x));
    assert(/not trusted/.test(note) && /Manage Workspace Trust/.test(note), `the note says why and how to trust (${note})`);
    assert(!fs.existsSync(IMPORT_MARKER), 'the handler module was not imported (no marker file)');
    await shot('restricted-save-runs-nothing');
  });

  await stage('trusting the folder enables Replay without a reload, and a save replays again', async () => {
    await trustFolder();
    await page.locator('.tab[aria-label^="service.py"]').first().click();
    // the note about the refused replay goes (the server was told; the handler is still open) ...
    await until(async () => {
      const r = await problems();
      return r.some((x) => /Recorded in production/.test(x)) && !r.some((x) => /Quick replay of .* is off/.test(x));
    }, 'the note to go from Problems (the recorded failure stays)', UI_WAIT_MS);
    await shot('trusted-note-gone');
    // ... and saving the handler now replays it: the marker module is imported
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
    const before = fs.readFileSync(HANDLER_FILE, 'utf8');
    await saveActiveEditor(HANDLER_FILE, (text) => text !== before);
    await until(() => fs.existsSync(IMPORT_MARKER), 'the trusted replay on save to import the handler (marker file)', UI_WAIT_MS, 250);
    log('marker after the trusted save:', fs.readFileSync(IMPORT_MARKER, 'utf8'));
    // put the handler back (the editor follows the file) before the walk goes on
    fs.writeFileSync(HANDLER_FILE, originalHandler);
    fs.rmSync(MARKER_MODULE, { force: true });
    await until(async () => !(await page.locator('.monaco-editor .view-lines').first().innerText()).includes(MARKER_IMPORT_LINE.slice(-12)), 'the editor to show the restored handler', UI_WAIT_MS);
    await until(async () => (await page.locator('.tab.dirty[aria-label^="service.py"]').count()) === 0, 'service.py clean', UI_WAIT_MS);
    // the viewer turns Replay and Debug on, without a reload
    await page.locator(`.tab[aria-label^="${traceName}"]`).first().click();
    viewer = await until(() => viewerFrame(traceName), 'the viewer frame');
    const st = await until(async () => {
      const t = await viewerTrustState(viewer);
      return t.replay && !t.replay.disabled && !t.debug.disabled && !t.note ? t : false;
    }, 'Replay and Debug to be enabled', UI_WAIT_MS);
    log('viewer after trust:', JSON.stringify(st));
    await shot('trusted-viewer-replay-enabled');
  });

  await stage('Replay prints the replay result', async () => {
    await viewer.locator('#replay-button').click();
    const toast = await until(async () => {
      const texts = await page.locator('.notifications-toasts .notification-toast').allInnerTexts();
      return texts.find((t) => /Replay of/.test(t)) || false;
    }, 'the replay notification', 60_000);
    log('replay:', JSON.stringify(toast));
    assert(/reproduced/.test(toast), `the replay reproduced the recording (${toast})`);
    const out = await page.locator('.output-view .view-lines, .panel .monaco-editor .view-lines').first().innerText().catch(() => '');
    log('replay output:', JSON.stringify(out.slice(0, 300)));
    await shot('replay-result');
    await page.keyboard.press('Escape');
  });

  let firstStop;
  await stage('Debug: the session pauses on the failing effect (or one timeline click from it) with the recorded error shown', async () => {
    // the Run and Debug view is where the harness reads the call stack (not a user action: it is
    // what VS Code shows while debugging)
    await runCommand('View: Show Run and Debug');
    await page.locator('.debug-viewlet, .pane-header').first().waitFor({ timeout: 60_000 });
    const t0 = Date.now();
    await viewer.locator('#debug-button').click();
    actions++;
    firstStop = await waitStop(undefined, 'the first stop');
    figures.debug_first_stop_s = ((Date.now() - t0) / 1000).toFixed(2);
    // room for the Replay timeline in the sidebar
    await ensurePaneCollapsed('Watch');
    await ensurePaneExpanded('Replay Timeline');
    log('first stop:', JSON.stringify(firstStop));
    // the exception widget (VS Code shows it for every exception stop, whatever the adapter
    // calls it: "Effect failed (recorded error)", "Exception", ...) shows the recorded error
    const errText = await until(async () => {
      const w = page.locator('.exception-widget:visible').first();
      return (await w.count()) ? (await w.innerText()) || false : false;
    }, 'the exception widget', 60_000).catch(() => '');
    log('exception widget:', JSON.stringify(errText.slice(0, 300)));
    await shot('first-stop');
    if (firstStop.line === chargeLine) {
      // the adapter stopped on the failed effect itself
      assert(/greater than zero/i.test(errText) || /PaymentDeclined/.test(firstStop.state), 'the recorded gateway error is shown');
    } else {
      // stopped where the handler raised: the recorded error is in the exception widget; the
      // failing effect is one click away in the Replay timeline
      assert(
        /greater than zero/i.test(errText) || /greater than zero/i.test(firstStop.state),
        `the recorded gateway error is shown (exception widget: ${JSON.stringify(errText)}, Call Stack: ${JSON.stringify(firstStop.state)})`,
      );
      await ensurePaneExpanded('Replay Timeline');
      const row = timelineRow('ChargeCard');
      await row.waitFor({ timeout: 60_000 });
      const label = await row.getAttribute('aria-label');
      assert(/failed/.test(label) && /greater than zero/.test(label), `the timeline shows ChargeCard failed with the recorded error (${label})`);
      await row.click();
      actions++;
      const s = await waitStop(firstStop, 'a stop on the failing effect');
      log('on the failing effect:', JSON.stringify(s));
      assert(s.line === chargeLine, `paused on the ChargeCard line ${chargeLine} (got ${s.line})`);
    }
    figures.user_actions_to_failure = actions;
    await shot('paused-on-failing-line');
  });

  await stage('breakpoint on the ChargeCard line, Debug again: stop there, total is 0.00, Replay scope', async () => {
    await page.keyboard.press('Shift+F5');
    await until(async () => (await page.locator('.debug-toolbar').count()) === 0 || !(await page.locator('.debug-toolbar').first().isVisible()), 'the session to end', 60_000);
    await openFile(HANDLER_REL);
    await gotoLine(chargeLine);
    await page.keyboard.press('F9');
    await page.locator('.monaco-editor .codicon-debug-breakpoint').first().waitFor({ timeout: 60_000 });
    await shot('breakpoint-set');
    // back to the viewer, Debug
    await page.locator(`.tab[aria-label^="${traceName}"]`).first().click();
    viewer = await until(() => viewerFrame(traceName), 'the viewer frame');
    const t0 = Date.now();
    await viewer.locator('#debug-button').click();
    const s = await waitStop(undefined, 'the breakpoint stop');
    figures.debug_to_breakpoint_s = ((Date.now() - t0) / 1000).toFixed(2);
    log('breakpoint stop:', JSON.stringify(s));
    assert(s.line === chargeLine, `stopped on line ${chargeLine} (got ${s.line})`);
    assert(/breakpoint/i.test(s.state), `paused on breakpoint (${s.state})`);
    firstStop = s;
    const vars = await until(async () => {
      const v = await variables();
      return v.some((x) => x.name === 'total') ? v : false;
    }, 'the variable total', 60_000);
    const total = vars.find((x) => x.name === 'total');
    log('total =', total.value);
    assert(/0\.00/.test(total.value), `total shows 0.00 (${total.value})`);
    const replay = vars.find((x) => x.scope && /Replay/i.test(x.text));
    assert(replay, `a Replay scope is shown (${vars.filter((x) => x.scope).map((x) => x.text).join(', ')})`);
    if (replay.expanded === 'false') {
      await page.locator('.debug-variables .monaco-list-row', { hasText: 'Replay' }).first().click();
      await page.waitForTimeout(300);
    }
    const after = await variables();
    const replayText = after.map((v) => v.text).join('\n');
    log('variables:', replayText.slice(0, 500));
    assert(/effect/i.test(replayText), 'the Replay scope shows the effect position');
    await shot('breakpoint-total-0.00');
  });

  let afterOver;
  let afterOver2;
  await stage('Step Over (twice)', async () => {
    await (await debugToolbarButton('Step Over')).click();
    afterOver = await waitStop(firstStop, 'a stop after Step Over');
    log('after step over:', JSON.stringify(afterOver));
    if (afterOver.step === firstStop.step) {
      // Stepping over the ChargeCard line performs the effect, which failed in production: the
      // "Effect failed (recorded error)" filter (on by default) stops right there first.
      assert(/failed \(recorded error\)/i.test(afterOver.state), `stepping over the failing effect stops on its recorded error (${afterOver.state})`);
      await shot('step-over-effect-failed');
      await (await debugToolbarButton('Step Over')).click();
      afterOver = await waitStop(afterOver, 'a stop after Step Over from the failed effect');
      log('after step over:', JSON.stringify(afterOver));
    }
    assert(afterOver.step > firstStop.step, `the step advanced (${firstStop.step} -> ${afterOver.step})`);
    await shot('step-over-1');
    await (await debugToolbarButton('Step Over')).click();
    afterOver2 = await waitStop(afterOver, 'a stop after the second Step Over');
    log('after step over 2:', JSON.stringify(afterOver2));
    assert(afterOver2.step > afterOver.step, `the step advanced (${afterOver.step} -> ${afterOver2.step})`);
    await shot('step-over-2');
  });

  await stage('Step Back returns to the earlier line', async () => {
    await (await debugToolbarButton('Step Back')).click();
    const s = await waitStop(afterOver2, 'a stop after Step Back');
    log('after step back:', JSON.stringify(s));
    assert(s.step < afterOver2.step, `the step went back (${afterOver2.step} -> ${s.step})`);
    assert(s.line === afterOver.line && s.step === afterOver.step, `back on line ${afterOver.line} at step ${afterOver.step} (got line ${s.line}, step ${s.step})`);
    afterOver2 = s;
    await shot('step-back');
  });

  await stage('Reverse continue goes back to the breakpoint', async () => {
    await (await debugToolbarButton('Step Over')).click();
    const fwd = await waitStop(afterOver2, 'a stop after Step Over');
    await (await debugToolbarButton('Reverse')).click();
    const s = await waitStop(fwd, 'a stop after Reverse');
    log('after reverse:', JSON.stringify(s));
    assert(s.line === chargeLine, `back on the breakpoint line ${chargeLine} (got ${s.line})`);
    assert(s.step === firstStop.step, `at the breakpoint's step ${firstStop.step} (got ${s.step})`);
    afterOver2 = s;
    await shot('reverse-continue');
  });

  await stage('Replay timeline: lists the effects, marks the position, jumps on click', async () => {
    await ensurePaneExpanded('Replay Timeline');
    // the view re-renders when the position event arrives, a moment after the stop
    const rows = await until(async () => {
      const r = await timelineRows();
      return r.length >= 4 && r.some((x) => /ChargeCard/.test(x) && /current position/.test(x)) ? r : false;
    }, 'the timeline rows with the ChargeCard effect current', 60_000).catch(async () => timelineRows());
    log('timeline:', JSON.stringify(rows));
    assert(rows.some((r) => /ChargeCard/.test(r) && /current position/.test(r)), 'the ChargeCard effect is marked as the current position');
    assert(rows.some((r) => /ChargeCard/.test(r) && /failed/.test(r)), 'the ChargeCard effect is marked failed');
    await shot('timeline-at-breakpoint');
    // jump backward to ApplyPromo
    const promo = timelineRow('ApplyPromo');
    await promo.click();
    const s = await waitStop(afterOver2, 'a stop after jumping to ApplyPromo');
    log('after jump to ApplyPromo:', JSON.stringify(s));
    assert(s.line === promoLine, `on the ApplyPromo line ${promoLine} (got ${s.line})`);
    const rows2 = await until(async () => {
      const r = await timelineRows();
      return r.some((x) => /ApplyPromo/.test(x) && /current position/.test(x)) ? r : false;
    }, 'ApplyPromo marked current', 60_000);
    log('timeline:', JSON.stringify(rows2));
    const vars2 = await until(async () => {
      const v = await variables();
      return v.some((x) => x.name === 'subtotal') ? v : false;
    }, 'the variables at ApplyPromo', 60_000);
    log('variables at ApplyPromo:', vars2.filter((x) => !x.scope).map((x) => x.label).join(' | ').slice(0, 300));
    await shot('timeline-jump-back-applypromo');
    // and forward again to ChargeCard
    await timelineRow('ChargeCard').click();
    const s2 = await waitStop(s, 'a stop after jumping to ChargeCard');
    assert(s2.line === chargeLine, `on the ChargeCard line ${chargeLine} (got ${s2.line})`);
    await until(async () => (await timelineRows()).some((x) => /ChargeCard/.test(x) && /current position/.test(x)), 'ChargeCard marked current', 60_000);
    // the Variables view shows the state at the new position (not an error from the adapter)
    const vars = await until(async () => {
      const v = await variables();
      return v.some((x) => x.name === 'total') ? v : false;
    }, 'the variable total after the jump', 60_000).catch(async (e) => {
      const v = await variables();
      throw new Error(`${e.message}; Variables show: ${v.map((x) => x.label).join(' | ')}`);
    });
    const total = vars.find((x) => x.name === 'total');
    assert(/0\.00/.test(total.value), `total is 0.00 after the jump (${total.value})`);
    await shot('timeline-jump-forward-chargecard');
  });

  await stage('stop the session: the timeline and the status bar item clear', async () => {
    await page.keyboard.press('Shift+F5');
    await until(async () => (await page.locator('.debug-toolbar').count()) === 0 || !(await page.locator('.debug-toolbar').first().isVisible()), 'the session to end', 60_000);
    await until(async () => (await timelineRows()).length === 0, 'the timeline to clear', 60_000);
    await until(async () => (await debugState()).status === '', 'the status bar item to hide', 60_000);
    await shot('session-ended');
  });

  await stage('the lens "Debug latest trace" in the handler starts the same kind of session', async () => {
    await page.locator(`.tab[aria-label^="service.py"]`).first().click();
    const lens = page.locator('.monaco-editor .codelens-decoration a', { hasText: 'Debug latest trace' }).first();
    await lens.waitFor({ timeout: 60_000 });
    const hover = await page.locator('.monaco-editor .codelens-decoration').allInnerTexts();
    log('lenses:', JSON.stringify(hover));
    await shot('handler-lenses-inlay-hints');
    await lens.click();
    const s = await waitStop(undefined, 'a stop after the lens');
    log('lens session stop:', JSON.stringify(s));
    assert(s.line === chargeLine && /breakpoint/i.test(s.state), `stopped at the breakpoint on line ${chargeLine} (got ${s.line}, ${s.state})`);
    // the timeline follows the new session
    await until(async () => (await timelineRows()).some((r) => /ChargeCard/.test(r) && /current position/.test(r)), 'the timeline of the new session', 60_000);
    await shot('lens-debug-latest-trace');
    await page.keyboard.press('Shift+F5');
    await until(async () => (await page.locator('.debug-toolbar').count()) === 0 || !(await page.locator('.debug-toolbar').first().isVisible()), 'the session to end', 60_000);
  });

  if (BIG_TRACE) {
    await stage('a 100,000-effect trace opens fast and scrolls (virtualized list)', async () => {
      await page.keyboard.press('Control+Shift+E');
      const rel = path.relative(WORKSPACE, BIG_TRACE).split(path.sep);
      for (const dir of rel.slice(0, -1)) {
        const r = await explorerRow(dir);
        await r.waitFor();
        if ((await r.getAttribute('aria-expanded')) !== 'true') await r.click();
      }
      const name = rel[rel.length - 1];
      const row = await explorerRow(name);
      await row.waitFor();
      const t0 = Date.now();
      await row.dblclick();
      const f = await until(async () => {
        const fr = await viewerFrame(name);
        if (!fr) return false;
        const st = await fr.evaluate(() => {
          const r = document.getElementById('prodture-viewer');
          return r.dataset.state === 'error' ? 'error: ' + r.innerText : r.dataset.painted === 'true' ? 'painted' : '';
        });
        if (st.startsWith('error')) throw new Error(st);
        return st === 'painted' ? fr : false;
      }, 'the big trace viewer to paint', 60_000, 20);
      figures.big_viewer_paint_s = ((Date.now() - t0) / 1000).toFixed(2);
      const total = await f.evaluate(() => Number(document.getElementById('effects').getAttribute('aria-rowcount')));
      assert(total >= 100_000, `the viewer counts ${total} effects`);
      const t1 = Date.now();
      await f.evaluate(() => {
        const s = document.getElementById('effects');
        s.scrollTop = s.scrollHeight;
      });
      const lastSeq = await until(
        () =>
          f.evaluate((n) => {
            const rows = [...document.querySelectorAll('.spacer .row')];
            const last = rows[rows.length - 1];
            const seq = last && last.dataset.seq ? Number(last.dataset.seq) : 0;
            return seq >= n - 1 ? seq : false;
          }, total),
        'the last rows to load',
        60_000,
        20,
      );
      figures.big_scroll_to_end_s = ((Date.now() - t1) / 1000).toFixed(2);
      const domRows = await f.evaluate(() => document.querySelectorAll('.spacer .row').length);
      log(`big trace: ${total} effects, last row #${lastSeq}, ${domRows} rows in the DOM`);
      assert(domRows < 150, `only the visible rows are rendered (${domRows})`);
      assert(lastSeq >= total - 1, `the end of the list is shown (last #${lastSeq} of ${total})`);
      await shot('viewer-100k-effects-end');
    });
  }
}

walk.run(main);
