// The extension's first run: installing prodture into the chosen interpreter in a visible
// terminal, and noticing when the interpreter can serve the viewer (the install's shell command
// ended, its terminal closed, the window got the focus back, or a look on a backing-off timer),
// so that an open trace viewer renders without being reopened. Installing runs code: only in a
// trusted folder.
import * as vscode from 'vscode';
import * as fs from 'fs';
import { Interpreters } from './interpreter';
import { WorkspaceTrustGate } from './trust';
import { InstallSource, InterpreterProblemError, PROBE_GIVE_UP_MS, findProdtureProject, installCommandLine, installSource, probeDelayMs } from './lib/setup';

const TERMINAL_NAME = 'Install prodture';

export class InterpreterSetup implements vscode.Disposable {
  private readonly ready = new vscode.EventEmitter<void>();
  /** fires when something may have made prodture importable: viewers waiting on it look again */
  readonly onMaybeReady = this.ready.event;
  private readonly installs = new Map<vscode.Terminal, { python: string; timer?: NodeJS.Timeout; started: number; done: boolean }>();
  private readonly disposables: vscode.Disposable[] = [this.ready];
  private readonly noticesShown = new Set<string>();

  constructor(
    private readonly interpreters: Interpreters,
    private readonly trust: WorkspaceTrustGate,
    private readonly log: vscode.OutputChannel,
  ) {
    this.disposables.push(
      vscode.window.onDidCloseTerminal((t) => {
        const run = this.installs.get(t);
        if (!run) return;
        this.log.appendLine(`[setup] the install terminal closed (exit ${t.exitStatus?.code ?? '?'})`);
        this.stopWatching(t);
        this.ready.fire();
      }),
      vscode.window.onDidChangeWindowState((s) => {
        if (s.focused) this.ready.fire();
      }),
    );
    // the install's command ended (reported where the shell has VS Code's shell integration): look at once
    this.disposables.push(
      vscode.window.onDidEndTerminalShellExecution((e) => {
        const run = this.installs.get(e.terminal);
        if (!run || run.done) return;
        this.log.appendLine(`[setup] the install command ended (exit ${e.exitCode ?? '?'})`);
        this.finish(e.terminal);
      }),
    );
  }

  /** Where "Install prodture" takes it from: the open prodture project if any, else the published package. */
  source(): InstallSource {
    const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
    const readText = (file: string) => {
      try {
        return fs.readFileSync(file, 'utf8');
      } catch {
        return undefined;
      }
    };
    return installSource(findProdtureProject(folders, readText));
  }

  /**
   * The notice when the interpreter lacks prodture (the language server could not start): the
   * same ways out as the viewer's panel, not a command to copy.
   */
  async notify(e: InterpreterProblemError): Promise<void> {
    const { python, kind } = e.problem;
    const key = `${kind}|${python}`;
    if (this.noticesShown.has(key)) return; // that notice is up already
    this.noticesShown.add(key);
    const install = 'Install prodture';
    const choose = 'Choose Interpreter…';
    const buttons = kind === 'not-installed' && this.trust.trusted ? [install, choose] : [choose];
    const text = kind === 'not-installed' ? `prodture: ${python} lacks prodture, which the trace viewer, hovers and the debugger need.` : `prodture: ${e.problem.message}`;
    const pick = await vscode.window.showWarningMessage(text, ...buttons).then(
      (p) => p,
      () => undefined,
    );
    this.noticesShown.delete(key);
    if (pick === install) await this.install(python);
    else if (pick === choose) await this.interpreters.pickAnother();
  }

  /** An install is running (its terminal is open) for `python`. */
  installing(python: string): boolean {
    return [...this.installs.values()].some((r) => r.python === python && !r.done);
  }

  /** Types the install command into a visible terminal and watches for its result. */
  async install(python: string): Promise<void> {
    if (!this.trust.allows('install')) return;
    const source = this.source();
    const command = installCommandLine(python, source);
    for (const [t, r] of this.installs) if (r.python === python) t.dispose(); // one at a time
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri;
    const terminal = vscode.window.createTerminal({ name: TERMINAL_NAME, cwd, iconPath: new vscode.ThemeIcon('cloud-download') });
    this.installs.set(terminal, { python, started: Date.now(), done: false });
    terminal.show(false);
    terminal.sendText(command, true);
    this.log.appendLine(`[setup] installing into ${python}: ${command}`);
    this.watch(terminal, 0);
  }

  /** Look again on a backing-off timer (the terminal's end is not always reported). */
  private watch(terminal: vscode.Terminal, attempt: number): void {
    const run = this.installs.get(terminal);
    if (!run) return;
    if (Date.now() - run.started > PROBE_GIVE_UP_MS) {
      this.log.appendLine(`[setup] stopped watching the install into ${run.python} (focus the window or reopen the trace to look again)`);
      run.timer = undefined;
      return;
    }
    run.timer = setTimeout(async () => {
      if (!this.installs.has(terminal) || run.done) return;
      const problem = await this.interpreters.probe(run.python, 'prodture.lsp');
      if (!problem) {
        this.log.appendLine(`[setup] prodture is importable in ${run.python} now`);
        this.finish(terminal); // the terminal stays open for the user to read
        return;
      }
      this.watch(terminal, attempt + 1);
    }, probeDelayMs(attempt));
  }

  /** The install is over (its command ended, or prodture imports): stop the timer, tell the viewers. */
  private finish(terminal: vscode.Terminal): void {
    const run = this.installs.get(terminal);
    if (!run) return;
    run.done = true;
    if (run.timer) clearTimeout(run.timer);
    run.timer = undefined;
    this.ready.fire();
  }

  private stopWatching(terminal: vscode.Terminal): void {
    const run = this.installs.get(terminal);
    if (run?.timer) clearTimeout(run.timer);
    this.installs.delete(terminal);
  }

  dispose(): void {
    for (const t of [...this.installs.keys()]) this.stopWatching(t);
    this.disposables.forEach((d) => d.dispose());
  }
}
