// "Prodture: Fetch from Event Store…" and "Prodture: Show Event Books": both run the `prodture
// events` command line in the chosen interpreter (the store is opened read-only there) and open
// the result — the fetched trace in the trace viewer, the event books beside it.
import * as vscode from 'vscode';
import * as path from 'path';
import { execFile } from 'child_process';
import { Interpreters } from './interpreter';
import { WorkspaceTrustGate } from './trust';
import { TRACE_EXT, VIEW_TYPE } from './lib/protocol';
import { baseName } from './lib/paths';
import { EventBookView, FetchRequest, booksArgs, fetchArgs, firstErrorLine, parseFetched, renderBooks, traceToOpen } from './lib/eventStore';

const BOOKS_SCHEME = 'prodture-books';
/** The rendered event books, by virtual document URI (read-only documents: nothing to save). */
const rendered = new Map<string, string>();

/** Both commands run the CLI with `python -m` in the folder (its pyproject.toml, its modules on
 * sys.path): in an untrusted folder that is the folder's code, so they ask the trust gate. */
export function registerEventStore(interpreters: Interpreters, trust: WorkspaceTrustGate, log: vscode.OutputChannel): vscode.Disposable[] {
  return [
    vscode.workspace.registerTextDocumentContentProvider(BOOKS_SCHEME, { provideTextDocumentContent: (uri) => rendered.get(uri.toString()) ?? '' }),
    vscode.commands.registerCommand('prodture.fetchFromEventStore', (arg?: FetchRequest) => (trust.allows('store') ? fetchFromEventStore(interpreters, log, arg) : undefined)),
    vscode.commands.registerCommand('prodture.showEventBooks', (arg?: unknown) => (trust.allows('books') ? showEventBooks(interpreters, log, arg) : undefined)),
  ];
}

function workspaceDir(resource?: vscode.Uri): string | undefined {
  const folder = resource ? vscode.workspace.getWorkspaceFolder(resource) : vscode.workspace.workspaceFolders?.[0];
  return folder?.uri.fsPath;
}

function run(python: string, args: string[], cwd: string | undefined, log: vscode.OutputChannel): Promise<string> {
  log.appendLine(`[events] ${python} ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    execFile(python, args, { cwd, timeout: 300_000, maxBuffer: 64 * 1024 * 1024, windowsHide: true }, (err, stdout, stderr) => {
      if (err) {
        const code = typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null;
        reject(new Error(firstErrorLine(String(stderr), code)));
        return;
      }
      resolve(String(stdout));
    });
  });
}

async function askRequest(cwd: string | undefined): Promise<FetchRequest | undefined> {
  const configured = vscode.workspace.getConfiguration('prodture').get<string>('eventStore', '');
  const store = await vscode.window.showInputBox({
    title: 'Fetch from event store (read-only)',
    prompt: 'Store URL: postgresql://… or sqlite:///path (empty: PRODTURE_STORE, then [tool.prodture] store)',
    value: configured,
    ignoreFocusOut: true,
  });
  if (store === undefined) return undefined;
  const how = await vscode.window.showQuickPick(
    [
      { label: 'A flow, by correlation id', description: 'every component execution of one flow', how: 'correlation' as const },
      { label: 'The failing command of a recorded trace…', description: 'its stream, up to the sequence it saw', how: 'trace' as const },
      { label: 'A stream and a command', description: 'domain, root, handler, command JSON', how: 'stream' as const },
    ],
    { title: 'What to fetch' },
  );
  if (!how) return undefined;
  if (how.how === 'correlation') {
    const correlationId = await vscode.window.showInputBox({ prompt: 'Correlation id (from the log record of the failure)', ignoreFocusOut: true });
    return correlationId ? { kind: 'correlation', store, correlationId } : undefined;
  }
  if (how.how === 'trace') {
    const picked = await vscode.window.showOpenDialog({
      canSelectMany: false,
      defaultUri: cwd ? vscode.Uri.file(cwd) : undefined,
      filters: { 'prodture traces': [TRACE_EXT.replace(/^\./, '')] },
    });
    return picked?.[0] ? { kind: 'trace', store, trace: picked[0].fsPath } : undefined;
  }
  const domain = await vscode.window.showInputBox({ prompt: 'Domain (e.g. player)', ignoreFocusOut: true });
  if (!domain) return undefined;
  const root = await vscode.window.showInputBox({ prompt: `Root in ${domain}`, ignoreFocusOut: true });
  if (!root) return undefined;
  const handler = await vscode.window.showInputBox({ prompt: 'Handler (module:function)', ignoreFocusOut: true });
  if (!handler) return undefined;
  const command = await vscode.window.showInputBox({ prompt: 'Command as JSON: {"type": "registered.Name", …}', ignoreFocusOut: true });
  return command ? { kind: 'stream', store, domain, root, handler, command } : undefined;
}

async function fetchFromEventStore(interpreters: Interpreters, log: vscode.OutputChannel, arg?: FetchRequest): Promise<string[] | undefined> {
  const cwd = workspaceDir();
  const request = arg ?? (await askRequest(cwd));
  if (!request) return undefined;
  const { python } = await interpreters.choose(cwd ? vscode.Uri.file(cwd) : undefined);
  const problem = await interpreters.check(python, 'prodture.cli', cwd);
  if (problem) {
    void interpreters.showError(problem, python);
    return undefined;
  }
  try {
    const fetched = parseFetched(await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Fetching from the event store (read-only)…' },
      () => run(python, fetchArgs(request), cwd, log),
    ));
    const paths = fetched.map((t) => (path.isAbsolute(t.path) ? t.path : path.join(cwd ?? '', t.path)));
    const first = traceToOpen(fetched);
    if (first) {
      const open = path.isAbsolute(first.path) ? first.path : path.join(cwd ?? '', first.path);
      await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(open), VIEW_TYPE);
      void vscode.window.showInformationMessage(`Fetched ${fetched.length} trace${fetched.length === 1 ? '' : 's'}; opened ${baseName(open)}.`);
    }
    return paths;
  } catch (e) {
    const message = String((e as Error)?.message ?? e);
    log.appendLine(`[events] ${message}`);
    void vscode.window.showErrorMessage(message);
    return undefined;
  }
}

function activeTrace(): string | undefined {
  const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
  const input = tab?.input;
  if (input instanceof vscode.TabInputCustom && input.viewType === VIEW_TYPE) return input.uri.fsPath;
  return undefined;
}

async function showEventBooks(interpreters: Interpreters, log: vscode.OutputChannel, arg?: unknown): Promise<string | undefined> {
  const trace = typeof arg === 'string' ? arg : arg instanceof vscode.Uri ? arg.fsPath : activeTrace();
  if (!trace) {
    void vscode.window.showInformationMessage('Open a trace first (the event books are those of the trace in the viewer).');
    return undefined;
  }
  const cwd = workspaceDir(vscode.Uri.file(trace)) ?? path.dirname(trace);
  const { python } = await interpreters.choose(vscode.Uri.file(trace));
  try {
    const books = JSON.parse(await run(python, [...booksArgs(trace), '--cwd', cwd], cwd, log)) as EventBookView[];
    const content = renderBooks(baseName(trace), books);
    const uri = vscode.Uri.from({ scheme: BOOKS_SCHEME, path: `/Event books of ${baseName(trace)}.md`, query: String(Date.now()) });
    rendered.set(uri.toString(), content);
    const doc = await vscode.languages.setTextDocumentLanguage(await vscode.workspace.openTextDocument(uri), 'markdown');
    await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
    return content;
  } catch (e) {
    const message = String((e as Error)?.message ?? e);
    void vscode.window.showErrorMessage(message);
    return undefined;
  }
}
