// End-to-end walk of the extension's first run in a real VS Code (code-server), driven by
// playwright-core: prodture.python names a new virtual environment that lacks prodture (every new
// user's case). Double-clicking a trace shows, in the viewer, which interpreter lacks prodture,
// with "Install prodture into <python>" (off in Restricted Mode, saying why) and "Choose another
// interpreter…". Once the folder is trusted, Install runs pip in a visible terminal (from this
// checkout of prodture, which holds the example), and the trace renders in the same viewer without
// reopening it. Started by scripts/vscode-e2e/run.sh with E2E_WALKS=walk-firstrun.cjs
// E2E_FRESH_VENV=1 (see tests/e2e-vscode/README.md). Prints `name: value` figures.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const { createWalk, env, assert, failingCheckoutTrace } = require('./workbench.cjs');

const URL = env('E2E_URL');
const WORKSPACE = env('E2E_WORKSPACE');
const ARTIFACTS = env('E2E_ARTIFACTS');
const FRESH_PYTHON = env('E2E_FRESH_PYTHON');
const TOTAL_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 900_000);
/** pip builds and installs prodture with its debug extras: minutes on a busy machine */
const INSTALL_WAIT_MS = 600_000;

const walk = createWalk({ tag: 'walk-firstrun', summary: 'vscode-e2e-firstrun', artifacts: ARTIFACTS, timeoutMs: TOTAL_TIMEOUT_MS });
const { UI_WAIT_MS, figures, log, shot, stage, until, explorerRow, viewerFrame, trustFolder, notificationTexts } = walk;
let page;

/** What the viewer shows: its state, the setup panel's buttons and lines, and the frame's mark. */
function viewerState(frame) {
  return frame.evaluate(() => {
    const r = document.getElementById('prodture-viewer');
    const b = (id) => {
      const e = document.getElementById(id);
      return e ? { text: e.textContent, disabled: e.disabled, title: e.title } : null;
    };
    const panel = document.getElementById('setup-panel');
    const reason = document.getElementById('install-reason');
    const status = document.getElementById('install-status');
    return {
      state: r ? r.dataset.state : null,
      painted: r ? r.dataset.painted === 'true' : false,
      text: r ? r.innerText : '',
      panel: panel ? panel.innerText : '',
      install: b('install-button'),
      choose: b('choose-interpreter-button'),
      reason: reason ? reason.innerText : '',
      status: status ? status.innerText : '',
      // set by the walk before the install: still there afterwards = the same page, not reopened
      mark: window.__firstRunMark || null,
    };
  });
}

/** The viewer frame whatever it shows (its file name is in the page title before the trace is shown). */
async function anyViewerFrame() {
  return until(() => viewerFrame('.prodtrace'), 'the trace viewer frame', UI_WAIT_MS);
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const trace = failingCheckoutTrace(WORKSPACE);
  const traceName = path.basename(trace);
  let lacks = false;
  try {
    execFileSync(FRESH_PYTHON, ['-c', 'import prodture'], { stdio: 'ignore' });
  } catch {
    lacks = true;
  }
  assert(lacks, `${FRESH_PYTHON} lacks prodture before the walk`);
  log(`trace ${traceName}; interpreter ${FRESH_PYTHON} (no prodture)`);

  // the terminal's DOM renderer, so that the walk can read what the terminal shows
  const settingsFile = path.join(env('E2E_USER_DATA'), 'User', 'settings.json');
  const settings = JSON.parse(fs.readFileSync(settingsFile, 'utf8'));
  settings['terminal.integrated.gpuAcceleration'] = 'off';
  fs.writeFileSync(settingsFile, JSON.stringify(settings, null, 2));

  page = await walk.launch();

  await stage('workbench loads with the extension, in Restricted Mode', async () => {
    await page.goto(URL);
    await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: UI_WAIT_MS });
    await until(() => walk.commandsListed('Prodture', ['Prodture: Debug Trace', 'Prodture: Show Trace']), 'the Prodture commands in the command palette', UI_WAIT_MS, 500);
    await until(async () => (await page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).count()) > 0, 'the Restricted Mode indicator', UI_WAIT_MS, 250);
    await shot('workbench');
  });

  let viewer;
  await stage('double-click a trace: the viewer says which interpreter lacks prodture and offers install / choose', async () => {
    const folder = await explorerRow('traces');
    await folder.waitFor();
    if ((await folder.getAttribute('aria-expanded')) !== 'true') await folder.click();
    const row = await explorerRow(traceName);
    await row.waitFor();
    await row.dblclick();
    viewer = await anyViewerFrame();
    const st = await until(async () => {
      const s = await viewerState(viewer);
      if (s.state === 'error') throw Object.assign(new Error(`the viewer shows an error instead of the setup panel: ${s.text}`), { fatal: true });
      return s.state === 'setup' ? s : false;
    }, 'the setup panel', UI_WAIT_MS);
    log('setup panel:', JSON.stringify(st));
    assert(/prodture is not installed/i.test(st.panel), `it says prodture is missing (${st.panel})`);
    assert(st.panel.includes(FRESH_PYTHON), `it names the interpreter ${FRESH_PYTHON}`);
    assert(/prodture\.python setting/.test(st.panel), 'it says how the interpreter was chosen');
    assert(st.install && st.install.text === `Install prodture into ${FRESH_PYTHON}`, `the install button names the interpreter (${st.install && st.install.text})`);
    assert(st.choose && st.choose.text === 'Choose another interpreter…' && !st.choose.disabled, 'Choose another interpreter… is offered');
    assert(st.install.disabled, 'Restricted Mode: install is off');
    assert(/Restricted Mode/.test(st.reason) && /not trusted/.test(st.reason) && !st.reason.includes('\n'), `one line says why (${st.reason})`);
    assert(/pip install -e .*\[debug\]/.test(st.panel), `the command to run is shown (${st.panel})`);
    await shot('setup-panel-restricted');
  });

  /** "Choose another interpreter…" → "Enter interpreter path…" → `python`. */
  async function chooseByPath(python, shotName) {
    await viewer.locator('#choose-interpreter-button').click();
    const rows = await until(async () => {
      const t = await page.locator('.quick-input-widget .quick-input-list .monaco-list-row').allInnerTexts();
      return t.some((x) => /Enter interpreter path/.test(x)) ? t : false;
    }, 'the interpreter quick pick', UI_WAIT_MS);
    log('quick pick:', JSON.stringify(rows));
    assert(rows.some((x) => /Find interpreter/.test(x)), 'a file picker is offered');
    if (shotName) await shot(shotName);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Enter interpreter path' }).first().click();
    const input = page.locator('.quick-input-widget input').first();
    await until(async () => (await page.locator('.quick-input-widget .quick-input-title', { hasText: 'Interpreter for prodture' }).count()) > 0, 'the path input', UI_WAIT_MS);
    await input.fill(python);
    await page.keyboard.press('Enter');
  }

  await stage('Choose another interpreter…: the viewer follows the choice in the same page', async () => {
    await viewer.evaluate(() => {
      window.__firstRunMark = 'before-choice';
    });
    const missing = path.join(path.dirname(FRESH_PYTHON), 'no-such-python');
    await chooseByPath(missing, 'choose-interpreter');
    const gone = await until(async () => {
      const s = await viewerState(viewer);
      return s.state === 'setup' && s.panel.includes(missing) ? s : false;
    }, 'the panel to name the chosen interpreter', UI_WAIT_MS);
    log('after choosing a missing interpreter:', JSON.stringify(gone.panel.slice(0, 200)));
    assert(/could not be started/i.test(gone.panel), `it says the interpreter cannot start (${gone.panel.slice(0, 200)})`);
    assert(gone.install.disabled && /choose another interpreter/.test(gone.reason), `install is off, saying why (${gone.reason})`);
    assert(gone.mark === 'before-choice', 'the same viewer page');
    await shot('chose-missing-interpreter');
    await chooseByPath(FRESH_PYTHON);
    const back = await until(async () => {
      const s = await viewerState(viewer);
      return s.state === 'setup' && /not installed/i.test(s.panel) && s.panel.includes(FRESH_PYTHON) ? s : false;
    }, 'the panel to name the new venv again', UI_WAIT_MS);
    assert(back.mark === 'before-choice', 'the same viewer page');
  });

  await stage('trusting the folder turns Install on in the same viewer', async () => {
    await viewer.evaluate(() => {
      window.__firstRunMark = 'before-install';
    });
    await trustFolder();
    await page.locator(`.tab[aria-label^="${traceName}"]`).first().click();
    const st = await until(async () => {
      const s = await viewerState(viewer);
      return s.state === 'setup' && s.install && !s.install.disabled ? s : false;
    }, 'Install to be enabled', UI_WAIT_MS);
    assert(!st.reason, `no Restricted Mode reason any more (${st.reason})`);
    assert(st.mark === 'before-install', 'the same viewer page');
    log('notifications while the panel shows:', JSON.stringify(await notificationTexts()));
    await shot('setup-panel-trusted');
  });

  let t0;
  await stage('Install prodture: pip runs in a visible terminal', async () => {
    t0 = Date.now();
    await viewer.locator('#install-button').click();
    const tab = await until(async () => {
      const tabs = await page.locator('.terminal-tabs-entry, .single-terminal-tab, .terminal-tab').allInnerTexts();
      const titles = await page.evaluate(() => [...document.querySelectorAll('[aria-label]')].map((e) => e.getAttribute('aria-label')).filter((l) => /Install prodture/.test(l) && /[Tt]erminal/.test(l)));
      return tabs.find((t) => /Install prodture/.test(t)) || titles[0] || false;
    }, 'the "Install prodture" terminal', UI_WAIT_MS, 200);
    log('terminal:', JSON.stringify(tab));
    const visible = await page.locator('.terminal-outer-container, .integrated-terminal').first().isVisible();
    assert(visible, 'the terminal panel is shown');
    const st = await until(async () => {
      const s = await viewerState(viewer);
      return s.status || s.state === 'ready' ? s : false;
    }, 'the viewer to say the install runs', UI_WAIT_MS);
    log('while installing:', JSON.stringify(st.status));
    if (st.state === 'setup') assert(/Installing in the terminal/.test(st.status) && st.install.disabled, `the panel says it is installing (${st.status})`);
    // the terminal shows the pip command (its DOM renderer keeps the rows as text)
    const typed = await until(async () => {
      const rows = await page.evaluate(() => [...document.querySelectorAll('.xterm-rows')].map((e) => e.innerText).join('\n'));
      const flat = rows.replace(/\u00a0/g, ' ');
      return flat.includes(`${FRESH_PYTHON} -m pip install -e`) ? flat : false;
    }, 'the pip command in the terminal', UI_WAIT_MS, 250);
    log('terminal:', JSON.stringify(typed.replace(/\s+/g, ' ').slice(0, 300)));
    await shot('installing-in-terminal');
  });

  await stage('once pip has finished, the trace renders in the same viewer without reopening it', async () => {
    const st = await until(
      async () => {
        const s = await viewerState(viewer);
        if (s.state === 'error') throw Object.assign(new Error(`the viewer shows an error: ${s.text}`), { fatal: true });
        return s.state === 'ready' && s.painted ? s : false;
      },
      'the trace to render after the install',
      INSTALL_WAIT_MS,
      1000,
    );
    figures.firstrun_install_to_trace_s = ((Date.now() - t0) / 1000).toFixed(1);
    log('viewer:', JSON.stringify({ ...st, text: st.text.slice(0, 300) }));
    assert(st.mark === 'before-install', 'the same viewer page (not reopened)');
    assert(/place_order/.test(st.text) && /Failure/.test(st.text) && /ChargeCard/.test(st.text), 'the trace is shown: handler, outcome, the failing effect');
    assert((await page.locator(`.tab[aria-label^="${traceName}"]`).count()) === 1, 'one tab of the trace');
    execFileSync(FRESH_PYTHON, ['-c', 'import prodture.lsp'], { stdio: 'ignore' }); // installed for real
    await shot('trace-rendered-after-install');
  });
}

walk.run(main);
