// The language client for `python -m prodture.lsp`: language features in handler files and the
// data source of the trace viewer (`prodture/traceSummary`). It runs in Restricted Mode too (it
// only reads traces): there it starts outside the folder, and it is told the folder's trust
// (`workspaceTrusted`, `prodture/setWorkspaceTrust`) so that it replays on save only once trusted.
import * as vscode from 'vscode';
import { LanguageClient, LanguageClientOptions, ServerOptions, State } from 'vscode-languageclient/node';
import { Interpreters } from './interpreter';
import { WorkspaceTrustGate } from './trust';
import { dirName } from './lib/paths';
import { LSP_SET_ACTIVE_TRACES, LSP_SET_WORKSPACE_TRUST, LSP_TRACE_SUMMARY, TraceSummary } from './lib/protocol';
import { safePythonEnv } from './lib/trust';
import { InterpreterProblemError, ProblemKind } from './lib/setup';

export class LanguageServer implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<LanguageClient> | undefined;
  private lastError: string | undefined;
  private activeTraces: string[] = [];
  private readonly restarted = new vscode.EventEmitter<void>();
  /** fires when the server is being started afresh (another interpreter, trust granted): waiting viewers ask again */
  readonly onDidRestart = this.restarted.event;
  private disposables: vscode.Disposable[] = [this.restarted];

  constructor(
    private readonly interpreters: Interpreters,
    private readonly trust: WorkspaceTrustGate,
    /** where the server runs while the folder is untrusted (no module of the folder on sys.path) */
    private readonly safeCwd: string,
    private readonly log: vscode.OutputChannel,
  ) {
    this.disposables.push(
      trust.onDidGrant(() => void this.trustGranted()),
      interpreters.onDidChange(() => void this.restartIfInterpreterChanged()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('prodture.languageServer') || e.affectsConfiguration('prodture.traceFolders')) void this.restart();
      }),
    );
    this.watchTraceFolders();
  }

  get enabled(): boolean {
    return vscode.workspace.getConfiguration('prodture').get<boolean>('languageServer.enabled', true);
  }

  /** The running client; starts it on first use. Rejects with a one-line message (and its fix). */
  get(): Promise<LanguageClient> {
    if (this.client && this.client.state === State.Running) return Promise.resolve(this.client);
    if (!this.starting) {
      this.starting = this.start().catch((e) => {
        this.starting = undefined;
        throw e;
      });
    }
    return this.starting;
  }

  /**
   * Folders the server lists traces from (headers only, for the "Debug latest trace" lenses): the
   * folders of the workspace that hold traces (found with VS Code's file search, so a big workspace
   * is not walked by the server), plus the `prodture.traceFolders` setting.
   */
  private async traceFolders(): Promise<string[]> {
    const extra = vscode.workspace.getConfiguration('prodture').get<string[]>('traceFolders', []);
    const files = await vscode.workspace.findFiles('**/*.prodtrace', '{**/node_modules/**,**/.git/**,**/.venv/**}', 2000);
    for (const f of files) this.knownFolders.add(dirName(f.fsPath));
    return [...new Set([...this.knownFolders, ...extra])].sort();
  }

  private knownFolders = new Set<string>();

  private watchTraceFolders(): void {
    const w = vscode.workspace.createFileSystemWatcher('**/*.prodtrace', false, true, true);
    this.disposables.push(
      w,
      w.onDidCreate((uri) => {
        const dir = dirName(uri.fsPath);
        if (this.knownFolders.has(dir)) return;
        this.knownFolders.add(dir);
        if (this.client && this.client.state === State.Running) {
          void this.traceFolders().then((traceFolders) => this.client?.sendNotification(LSP_SET_ACTIVE_TRACES, { traces: this.activeTraces, traceFolders }));
        }
      }),
    );
  }

  private async start(): Promise<LanguageClient> {
    if (!this.enabled) throw new Error('The prodture language server is disabled (prodture.languageServer.enabled): enable it to see trace contents.');
    const folder = vscode.workspace.workspaceFolders?.[0];
    const traceFolders = await this.traceFolders();
    const { python, source } = await this.interpreters.choose(folder?.uri);
    this.python = python;
    const trusted = this.trust.trusted;
    const cwd = trusted ? folder?.uri.fsPath : this.safeCwd;
    const refused = this.trust.interpreterProblem(python);
    const problem: { kind: ProblemKind; message: string } | undefined = refused
      ? { kind: 'untrusted-location', message: refused }
      : await this.interpreters.probe(python, 'prodture.lsp', cwd);
    if (problem) {
      this.lastError = problem.message;
      throw new InterpreterProblemError({ ...problem, python, source });
    }
    const serverOptions: ServerOptions = {
      command: python,
      args: ['-m', 'prodture.lsp'],
      options: { cwd, env: safePythonEnv(process.env, trusted) as NodeJS.ProcessEnv },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file', language: 'python' }],
      initializationOptions: { traces: this.activeTraces, traceFolders, workspaceTrusted: trusted },
      outputChannel: this.log,
    };
    const client = new LanguageClient('prodture', 'Prodture Language Server', serverOptions, clientOptions);
    const t0 = Date.now();
    try {
      await client.start();
    } catch (e) {
      this.lastError = `The prodture language server (${python} -m prodture.lsp) did not start: ${String((e as Error)?.message ?? e)} — see the "Prodture" output.`;
      throw new Error(this.lastError);
    }
    this.log.appendLine(`[lsp] started ${python} -m prodture.lsp in ${Date.now() - t0} ms`);
    this.client = client;
    this.lastError = undefined;
    if (this.activeTraces.length) void client.sendNotification(LSP_SET_ACTIVE_TRACES, { traces: this.activeTraces });
    // trust granted while the server was starting
    if (this.trust.trusted !== trusted) void client.sendNotification(LSP_SET_WORKSPACE_TRUST, { trusted: this.trust.trusted });
    return client;
  }

  /** Who tells the user that the interpreter cannot run the server (with the ways out); default: a plain warning. */
  interpreterProblemNotice: ((e: InterpreterProblemError) => void) | undefined;

  /** Start in the background (on activation), reporting a failure once, without a modal. */
  warmUp(): void {
    if (!this.enabled) return;
    this.get().catch((e) => {
      const msg = String((e as Error)?.message ?? e);
      this.log.appendLine(`[lsp] ${msg}`);
      // a Python project without traces should not be nagged; one with traces needs the fix
      if (this.knownFolders.size === 0) return;
      if (e instanceof InterpreterProblemError && this.interpreterProblemNotice) this.interpreterProblemNotice(e);
      else void vscode.window.showWarningMessage(msg);
    });
  }

  private python: string | undefined;

  /** Trust granted: the running server may replay on save from now on (no restart needed). */
  private async trustGranted(): Promise<void> {
    if (this.client && this.client.state === State.Running) {
      await this.client.sendNotification(LSP_SET_WORKSPACE_TRUST, { trusted: true });
      this.log.appendLine('[lsp] told the server the folder is trusted');
    } else if (this.lastError) {
      await this.restart(); // it may have been refused an interpreter inside the folder
    }
  }

  private async restartIfInterpreterChanged(): Promise<void> {
    const { python } = await this.interpreters.choose(vscode.workspace.workspaceFolders?.[0]?.uri);
    if (python !== this.python || !this.client) await this.restart();
  }

  async restart(): Promise<void> {
    const old = this.client;
    this.client = undefined;
    this.starting = undefined;
    if (old) {
      try {
        await old.stop();
      } catch {
        /* already gone */
      }
    }
    this.warmUp();
    this.restarted.fire();
  }

  async traceSummary(path: string, offset = 0, limit = 200): Promise<TraceSummary> {
    const client = await this.get();
    return client.sendRequest<TraceSummary>(LSP_TRACE_SUMMARY, { path, offset, limit });
  }

  setActiveTraces(traces: string[]): void {
    const sorted = [...new Set(traces)].sort();
    if (sorted.join('\n') === this.activeTraces.join('\n')) return;
    this.activeTraces = sorted;
    if (this.client && this.client.state === State.Running) {
      void this.client.sendNotification(LSP_SET_ACTIVE_TRACES, { traces: sorted });
    }
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
    void this.client?.stop().catch(() => undefined);
  }
}
