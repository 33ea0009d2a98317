// What every end-to-end walk shares: the browser on code-server, stages with screenshots, waits,
// and the helpers that drive VS Code's workbench (command palette, editors, the trace viewer's
// frame, the debugger's views). A walk calls `createWalk(...)`, then `walk.run(main)`; `main`
// uses `walk.page` once `walk.launch()` has opened it. Started by scripts/vscode-e2e/run.sh,
// which sets E2E_*.
'use strict';
const fs = require('fs');
const path = require('path');

/** An E2E_* variable, or `fallback`; without either the walk was not started by run.sh. */
function env(k, fallback) {
  const v = process.env[k] ?? fallback;
  if (v === undefined) throw new Error(`${k} is not set (run scripts/vscode-e2e/run.sh)`);
  return v;
}

function lineOf(file, needle) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`"${needle}" not found in ${file}`);
  return i + 1;
}

/** The example checkout's trace of the failing order: the one that recorded promo FREE100 (msgpack keeps strings as bytes). */
function failingCheckoutTrace(workspace) {
  const dir = path.join(workspace, 'traces');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.prodtrace')).sort();
  const hit = files.find((f) => fs.readFileSync(path.join(dir, f)).includes('FREE100'));
  if (!hit) throw new Error(`no trace with promo FREE100 in ${dir} (run examples/checkout/run_orders.py)`);
  return path.join(dir, hit);
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

/**
 * @param {object} o
 * @param {string} o.tag            log prefix, e.g. 'walk'
 * @param {string} o.summary        name of the pass/fail line, e.g. 'vscode-e2e'
 * @param {string} o.artifacts      folder of the screenshots
 * @param {number} o.timeoutMs      the whole walk gives up after this
 * @param {number} [o.untilMs]      default wait of `until`
 * @param {number} [o.untilEveryMs] default polling interval of `until`
 * @param {number} [o.stopTimeoutMs] default wait for a debugger stop
 * @param {number} [o.defaultTimeoutMs] Playwright's default timeout for the page
 * @param {(figures: object) => void} [o.beforeFigures] adds figures just before they are printed
 */
function createWalk(o) {
  /** UI waits inside the helpers: generous, a busy 2-core machine is slow and a flaky test is a failing test. */
  const UI_WAIT_MS = 60_000;
  const untilMs = o.untilMs ?? 60_000;
  const untilEveryMs = o.untilEveryMs ?? 50;
  const stopTimeoutMs = o.stopTimeoutMs ?? 90_000;
  const w = { figures: {}, results: [], page: undefined, browser: undefined, UI_WAIT_MS, env, lineOf, assert };
  let shotNo = 0;

  w.log = (...a) => console.log(`[${o.tag}]`, ...a);

  w.launch = async () => {
    const { chromium } = require(env('E2E_PLAYWRIGHT'));
    w.browser = await chromium.launch({
      executablePath: env('E2E_CHROMIUM', '/usr/bin/chromium'),
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    w.page = await w.browser.newPage({ viewport: { width: 1600, height: 1000 } });
    w.page.setDefaultTimeout(o.defaultTimeoutMs ?? 60_000);
    return w.page;
  };

  w.shot = async (name) => {
    const file = path.join(o.artifacts, `${String(++shotNo).padStart(2, '0')}-${name}.png`);
    await w.page.screenshot({ path: file });
    return file;
  };

  w.stage = async (name, fn) => {
    const t0 = Date.now();
    try {
      await fn();
      w.results.push({ name, ok: true });
      w.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      w.results.push({ name, ok: false, error: e });
      w.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
      try {
        await w.shot(`FAILED-${name.replace(/[^a-z0-9]+/gi, '-')}`);
      } catch {
        /* page gone */
      }
      throw e;
    }
  };

  /** Poll `fn` until it returns something truthy; an error with `fatal` set ends the wait at once. */
  w.until = async (fn, what, timeout = untilMs, every = untilEveryMs) => {
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
      await w.page.waitForTimeout(every);
    }
  };

  // ------------------------------------------------------------ workbench helpers

  w.quickInput = async (prefixText) => {
    const page = w.page;
    const input = page.locator('.quick-input-widget input').first();
    // F1 is lost when the focus sits where the workbench does not listen (a webview, a toast that
    // just closed): press it again until the command palette shows
    // (a palette still closing from the last command is visible but inert: wait for it to go)
    const state = () => input.evaluate((e) => (!e.offsetParent ? 'closed' : e.closest('[inert]') ? 'closing' : 'open')).catch(() => 'closed');
    await w.until(
      async () => {
        const now = await state();
        if (now !== 'closed') return now === 'open';
        await page.keyboard.press('F1');
        for (let i = 0; i < 30; i++) {
          if ((await state()) === 'open') return true;
          await page.waitForTimeout(100);
        }
        return false;
      },
      'the command palette',
      UI_WAIT_MS,
      200,
    );
    await input.fill(prefixText);
    await page.waitForTimeout(150);
    return input;
  };

  w.runCommand = async (title) => {
    await w.quickInput(`>${title}`);
    const row = w.page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
    await row.waitFor({ state: 'visible', timeout: UI_WAIT_MS });
    await w.page.keyboard.press('Enter');
  };

  /** Are these commands in the command palette (typed `prefix`)? Resolves to the labels when all are. */
  w.commandsListed = async (prefix, want) => {
    await w.quickInput(`>${prefix}`);
    await w.page.waitForTimeout(300);
    const labels = await w.page.locator('.quick-input-list .monaco-list-row').allInnerTexts();
    await w.page.keyboard.press('Escape');
    return want.every((t) => labels.some((l) => l.includes(t))) ? labels : false;
  };

  w.openFile = async (rel) => {
    await w.quickInput(rel);
    const row = w.page.locator('.quick-input-list .monaco-list-row', { hasText: path.basename(rel) }).first();
    await row.waitFor({ state: 'visible', timeout: UI_WAIT_MS });
    await w.page.keyboard.press('Enter');
    await w.page.locator(`.tab[aria-label^="${path.basename(rel)}"]`).first().waitFor({ timeout: UI_WAIT_MS });
  };

  w.cursorLine = async () => {
    const t = await w.page.locator('.statusbar-item[id="status.editor.selection"]').first().innerText({ timeout: 10_000 });
    const m = /Ln (\d+)/.exec(t);
    return m ? Number(m[1]) : undefined;
  };

  w.gotoLine = async (n) => {
    await w.quickInput(`:${n}`);
    await w.page.waitForTimeout(150);
    await w.page.keyboard.press('Enter');
    await w.until(async () => (await w.cursorLine()) === n, `cursor on line ${n}`, UI_WAIT_MS);
  };

  w.notificationTexts = () => w.page.locator('.notifications-toasts .notification-toast').allInnerTexts();

  w.clearNotifications = async () => {
    await w.runCommand('Notifications: Clear All Notifications');
    await w.until(async () => (await w.notificationTexts()).length === 0, 'the notifications to clear', UI_WAIT_MS);
  };

  /** The rows of the Problems panel (open it first). */
  w.problems = () => w.page.evaluate(() => [...document.querySelectorAll('.markers-panel .monaco-list-row')].map((r) => r.getAttribute('aria-label') || r.textContent.trim()));

  w.explorerRow = async (name) => w.page.locator(`.explorer-folders-view .monaco-list-row[aria-label="${name}"]`).first();

  /** The frame of the trace viewer showing `fileName`, or any viewer not showing a trace yet (webviews are nested iframes). */
  w.viewerFrame = async (fileName) => {
    for (const f of w.page.frames()) {
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
  };

  /** Trust the folder from the Workspace Trust editor and close that editor again. */
  w.trustFolder = async () => {
    const page = w.page;
    await w.runCommand('Workspaces: Manage Workspace Trust');
    const trustButton = page.locator('.workspace-trust-editor .workspace-trust-buttons .monaco-button', { hasText: /^Trust/ }).first();
    await trustButton.waitFor({ state: 'visible', timeout: UI_WAIT_MS });
    await w.shot('workspace-trust-editor');
    await trustButton.click();
    await w.until(async () => (await page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).count()) === 0, 'Restricted Mode to end', UI_WAIT_MS);
    await w.shot('workspace-trusted');
    // the Workspace Trust editor opens as a modal over the others: close it with its close button
    await w.until(
      async () => {
        if (!(await page.locator('.workspace-trust-editor').first().isVisible().catch(() => false))) return true;
        const close = page.locator('.modal-editor-part .modal-editor-header .codicon-close').first();
        if (await close.isVisible().catch(() => false)) await close.click();
        else await page.keyboard.press('Escape');
        return false;
      },
      'the Workspace Trust editor to close',
      UI_WAIT_MS,
      1000,
    );
  };

  w.debugToolbarButton = async (label) => {
    const b = w.page.locator(`.debug-toolbar .action-label[aria-label^="${label}"]`).first();
    await b.waitFor({ state: 'visible', timeout: UI_WAIT_MS });
    return b;
  };

  /** What the debugger shows now: the stop reason and top frame from Call Stack, the position from our status bar item. */
  w.debugState = () =>
    w.page.evaluate(() => {
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

  /** Wait for a stop different from `before` (by step), paused, with a top frame. */
  w.waitStop = (before, what, timeout = stopTimeoutMs) =>
    w.until(
      async () => {
        const s = await w.debugState();
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

  w.variables = () =>
    w.page.evaluate(() =>
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

  w.ensurePaneExpanded = async (title) => {
    const header = w.page.locator(`.pane-header[aria-label^="${title}"]`).first();
    await header.waitFor({ timeout: UI_WAIT_MS });
    if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
    return header;
  };

  w.ensurePaneCollapsed = async (title) => {
    const header = w.page.locator(`.pane-header[aria-label^="${title}"]`).first();
    if ((await header.count()) && (await header.getAttribute('aria-expanded')) === 'true') await header.click();
  };

  /** The row of an effect (by type name) in the Replay Timeline view. */
  w.timelineRow = (effectType) =>
    w.page
      .locator('.pane', { has: w.page.locator('.pane-header[aria-label^="Replay Timeline"]') })
      .locator('.monaco-list-row', { has: w.page.locator('.monaco-highlighted-label, .label-name', { hasText: effectType }) })
      .first();

  w.timelineRows = () =>
    w.page.evaluate(() => {
      const header = [...document.querySelectorAll('.pane-header')].find((h) => /Replay Timeline/i.test(h.getAttribute('aria-label') || h.textContent));
      const pane = header ? header.closest('.pane') : null;
      if (!pane) return [];
      return [...pane.querySelectorAll('.monaco-list-row')].map((r) => r.getAttribute('aria-label') || r.textContent.trim());
    });

  w.sessionEnded = async () => (await w.page.locator('.debug-toolbar').count()) === 0 || !(await w.page.locator('.debug-toolbar').first().isVisible());

  // ------------------------------------------------------------ running the walk

  async function finish(code, killer) {
    clearTimeout(killer);
    try {
      if (w.browser) await w.browser.close();
    } catch {
      /* already closed */
    }
    if (o.beforeFigures) o.beforeFigures(w.figures);
    for (const [k, v] of Object.entries(w.figures)) if (v !== undefined) console.log(`${k}: ${v}`);
    const passed = w.results.filter((r) => r.ok).length;
    const failed = w.results.length - passed;
    console.log(`screenshots: ${o.artifacts}`);
    console.log(`${o.summary}: ${passed} passed, ${failed} failed`);
    process.exit(code || (failed ? 1 : 0));
  }

  /** Run `main` (it stops at the first failed stage), print the figures and the pass/fail line, exit. */
  w.run = (main) => {
    const killer = setTimeout(() => {
      w.log(`the walk took longer than ${o.timeoutMs} ms: giving up`);
      finish(1, killer);
    }, o.timeoutMs);
    main().then(
      () => finish(0, killer),
      (e) => {
        if (!w.results.some((r) => !r.ok)) w.results.push({ name: 'setup', ok: false, error: e });
        w.log(`walk stopped: ${e && e.message ? e.message : e}`);
        finish(1, killer);
      },
    );
  };

  return w;
}

module.exports = { createWalk, env, lineOf, assert, failingCheckoutTrace };
