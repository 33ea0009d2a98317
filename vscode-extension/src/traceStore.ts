// Open a trace from the trace store (protocol/trace-store.md): "Open Trace from Store…" (a quick
// pick of recent failures), "Open Trace by Id…", and the vscode://prodture.prodture/open?id=…
// link (with &debug=1: straight to the debugger, paused on the recorded failure). The store is
// the `prodture.store` setting, else what the CLI finds (PRODTURE_STORE, [tool.prodture] store).
import * as vscode from 'vscode';
import * as fs from 'fs';
import * as path from 'path';
import { execFile } from 'child_process';
import { Interpreters } from './interpreter';
import { WorkspaceTrustGate } from './trust';
import { VIEW_TYPE } from './lib/protocol';
import { configForTrace } from './lib/launch';
import { StorePickItem, StoredTrace, ambiguousCandidates, cliArgs, isTraceId, looksLikeProdtureOtlp, maskPassword, parseListing, parseTraceLink, pickItems } from './lib/store';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

class TraceStore {
  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly interpreters: Interpreters,
    private readonly trust: WorkspaceTrustGate,
    private readonly log: vscode.OutputChannel,
  ) {}

  private folder(): vscode.WorkspaceFolder | undefined {
    return vscode.workspace.workspaceFolders?.[0];
  }

  /** Run the CLI in the first workspace folder (where pyproject.toml names the store). */
  private async cli(args: string[], storeOverride?: string): Promise<CliResult | undefined> {
    // `python -m` puts the working folder first on sys.path and the store comes from its
    // pyproject.toml: in an untrusted folder that is the folder's code
    if (!this.trust.allows('store')) return undefined;
    const folder = this.folder();
    const store = storeOverride ?? vscode.workspace.getConfiguration('prodture', folder?.uri).get<string>('store', '');
    const { python } = await this.interpreters.choose(folder?.uri);
    const problem = await this.interpreters.check(python, 'prodture.cli', folder?.uri.fsPath);
    if (problem) {
      void this.interpreters.showError(problem, python);
      return undefined;
    }
    const argv = cliArgs(args, store);
    this.log.appendLine(`[store] ${python} ${maskPassword(argv.join(' '))}`);
    return new Promise((resolve) => {
      execFile(python, argv, { cwd: folder?.uri.fsPath, timeout: 120_000, maxBuffer: 64 * 1024 * 1024, windowsHide: true }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 2) : 0;
        if (stderr) this.log.appendLine(`[store] ${maskPassword(String(stderr).trim())}`);
        resolve({ code, stdout: String(stdout), stderr: maskPassword(String(stderr || (err ? err.message : ''))) });
      });
    });
  }

  private fail(r: CliResult): void {
    const first = r.stderr.split('\n').find((l) => l.trim()) || `prodture exited with code ${r.code}`;
    void vscode.window.showErrorMessage(first.trim());
  }

  /** Fetch a trace by id or unique prefix into the extension's storage; its path, or undefined. */
  async fetch(id: string): Promise<string | undefined> {
    const dir = path.join(this.context.globalStorageUri.fsPath, 'traces');
    fs.mkdirSync(dir, { recursive: true });
    const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Fetching trace ${id.slice(0, 12)}…` }, () => this.cli(['fetch', id, '-o', dir]));
    if (!r) return undefined;
    if (r.code === 0) return r.stdout.trim().split('\n').pop();
    const candidates = ambiguousCandidates(r.stderr);
    if (candidates.length) {
      const pick = await vscode.window.showQuickPick(candidates, { placeHolder: `"${id}" matches ${candidates.length} traces: choose one` });
      return pick ? this.fetch(pick) : undefined;
    }
    this.fail(r);
    return undefined;
  }

  async open(id: string, debug: boolean): Promise<boolean> {
    const file = await this.fetch(id);
    if (!file) return false;
    if (debug) {
      // The replay runs in the workspace (its pyproject.toml allows the handler's modules).
      const folder = this.folder();
      return vscode.debug.startDebugging(folder, configForTrace(file, folder?.uri.fsPath) as vscode.DebugConfiguration);
    }
    await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(file), VIEW_TYPE);
    return true;
  }

  /**
   * Rebuild the traces of an OpenTelemetry export (OTLP JSON or protobuf) into a folder of the
   * extension's storage and open them: one directly, several through a quick pick.
   */
  async importOtlp(arg?: unknown): Promise<boolean> {
    let file = arg instanceof vscode.Uri ? arg.fsPath : typeof arg === 'string' ? arg : undefined;
    if (!file) {
      const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'OpenTelemetry export': ['json', 'jsonl', 'ndjson', 'pb', 'otlp', 'bin'] } });
      file = picked?.[0]?.fsPath;
    }
    if (!file) return false;
    const dir = path.join(this.context.globalStorageUri.fsPath, 'otlp', String(Date.now()));
    const imported = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Rebuilding traces from ${path.basename(file)}…` }, () => this.cli(['import', file as string], dir));
    if (!imported) return false;
    if (imported.code !== 0) {
      this.fail(imported);
      return false;
    }
    this.log.appendLine(`[store] ${imported.stdout.trim()}`);
    const listed = await this.cli(['list', '--json', '--limit', '500'], dir);
    const rows = listed && listed.code === 0 ? parseListing(listed.stdout) : new Error(listed ? listed.stderr : 'no listing');
    if (rows instanceof Error || rows.length === 0) {
      void vscode.window.showErrorMessage(rows instanceof Error ? rows.message : `${path.basename(file)} holds no prodture execution exported with payloads.`);
      return false;
    }
    let row: StoredTrace | undefined = rows[0];
    if (rows.length > 1) {
      const items = pickItems(rows);
      const pick = await vscode.window.showQuickPick(items, { placeHolder: `${rows.length} traces rebuilt from ${path.basename(file)}`, matchOnDescription: true, matchOnDetail: true });
      row = pick ? rows.find((r) => r.trace_id === pick.traceId) : undefined;
    }
    if (!row?.location) return false;
    await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(row.location), VIEW_TYPE);
    return true;
  }

  /** Opening an OTLP export that holds prodture executions offers to import it. */
  async offerImport(doc: vscode.TextDocument): Promise<void> {
    if (doc.uri.scheme !== 'file' || !looksLikeProdtureOtlp(doc.fileName, doc.getText())) return;
    const choice = await vscode.window.showInformationMessage(`${path.basename(doc.fileName)} is an OpenTelemetry export with prodture executions. Rebuild and open the traces?`, 'Import and Open');
    if (choice) await this.importOtlp(doc.uri);
  }

  async openFromStore(): Promise<boolean> {
    const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Listing recent failures…' }, () => this.cli(['list', '--failed', '--limit', '200', '--json']));
    if (!r) return false;
    if (r.code !== 0) {
      this.fail(r);
      return false;
    }
    const rows = parseListing(r.stdout);
    if (rows instanceof Error) {
      void vscode.window.showErrorMessage(rows.message);
      return false;
    }
    if (rows.length === 0) {
      void vscode.window.showInformationMessage('No failed executions in the trace store.');
      return false;
    }
    const debugButton: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon('debug-alt'), tooltip: 'Debug this trace' };
    const qp = vscode.window.createQuickPick<StorePickItem & vscode.QuickPickItem>();
    qp.placeholder = 'Recent failures — type to filter by handler, error, time, host or id';
    qp.matchOnDescription = true;
    qp.matchOnDetail = true;
    qp.items = pickItems(rows).map((i) => ({ ...i, buttons: [debugButton] }));
    const chosen = await new Promise<{ id: string; debug: boolean } | undefined>((resolve) => {
      qp.onDidAccept(() => resolve(qp.selectedItems[0] ? { id: qp.selectedItems[0].traceId, debug: false } : undefined));
      qp.onDidTriggerItemButton((e) => resolve({ id: e.item.traceId, debug: true }));
      qp.onDidHide(() => resolve(undefined));
      qp.show();
    });
    qp.dispose();
    return chosen ? this.open(chosen.id, chosen.debug) : false;
  }

  async openById(arg?: unknown): Promise<boolean> {
    let id = typeof arg === 'string' ? arg : undefined;
    id ??= await vscode.window.showInputBox({
      prompt: 'Trace id (or a unique prefix) from a log line, a ticket or a dashboard',
      placeHolder: '3f2a9c01…',
      validateInput: (s) => (isTraceId(s) ? undefined : 'a trace id: hexadecimal digits'),
    });
    return id ? this.open(id.trim(), false) : false;
  }

  async handleUri(uri: vscode.Uri): Promise<void> {
    const link = parseTraceLink(uri.path, uri.query);
    if (link instanceof Error) {
      void vscode.window.showErrorMessage(link.message);
      return;
    }
    await this.open(link.id, link.debug);
  }
}

/** The store commands and the URI handler, ready for `context.subscriptions.push(...)`. */
export function registerTraceStore(context: vscode.ExtensionContext, interpreters: Interpreters, trust: WorkspaceTrustGate, log: vscode.OutputChannel): vscode.Disposable[] {
  const store = new TraceStore(context, interpreters, trust, log);
  return [
    vscode.commands.registerCommand('prodture.openTraceFromStore', () => store.openFromStore()),
    vscode.commands.registerCommand('prodture.openTraceById', (arg?: unknown) => store.openById(arg)),
    vscode.commands.registerCommand('prodture.importOtlp', (arg?: unknown) => store.importOtlp(arg)),
    vscode.workspace.onDidOpenTextDocument((doc) => void store.offerImport(doc)),
    vscode.window.registerUriHandler({ handleUri: (uri) => store.handleUri(uri) }),
  ];
}
