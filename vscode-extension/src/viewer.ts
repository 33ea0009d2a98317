// The trace viewer: a read-only custom editor for *.prodtrace whose data comes from the language
// server (`prodture/traceSummary`, paged as the user scrolls). Showing a trace runs no code, so it
// works in Restricted Mode; its Replay and Debug buttons are off there, with the reason, until
// the folder is trusted. When the interpreter lacks prodture (the first run), the viewer says so
// and offers to install it or to choose another interpreter; it renders the trace as soon as the
// interpreter can serve it, in the same tab.
import * as vscode from 'vscode';
import * as fs from 'fs';
import { LanguageServer } from './lsp';
import { ReplaySessions } from './sessions';
import { WorkspaceTrustGate } from './trust';
import { Interpreters } from './interpreter';
import { InterpreterSetup } from './setup';
import { InterpreterProblemError, setupView } from './lib/setup';
import { FromWebview, ToWebview, TraceSummary, VIEW_TYPE } from './lib/protocol';
import { baseName } from './lib/paths';
import { viewerReason } from './lib/trust';

const FIRST_PAGE = 200;

export class TraceViewerProvider implements vscode.CustomReadonlyEditorProvider, vscode.Disposable {
  private panels = new Map<vscode.WebviewPanel, string>();
  private readonly openChanged = new vscode.EventEmitter<void>();
  /** fires when the set of traces open in viewers changes */
  readonly onDidChangeOpenTraces = this.openChanged.event;
  private disposables: vscode.Disposable[] = [];
  /** viewers showing the setup panel, with how each asks for its trace again */
  private readonly waiting = new Map<vscode.WebviewPanel, () => Promise<void>>();

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly lsp: LanguageServer,
    private readonly sessions: ReplaySessions,
    private readonly trust: WorkspaceTrustGate,
    private readonly interpreters: Interpreters,
    private readonly setup: InterpreterSetup,
    private readonly log: vscode.OutputChannel,
  ) {
    this.disposables.push(
      this.openChanged,
      vscode.window.registerCustomEditorProvider(VIEW_TYPE, this, {
        webviewOptions: { retainContextWhenHidden: true, enableFindWidget: true },
        supportsMultipleEditorsPerDocument: true,
      }),
      sessions.onDidChange(() => this.postPositions()),
      trust.onDidGrant(() => {
        for (const panel of this.panels.keys()) this.postTrust(panel);
        this.retryWaiting();
      }),
      lsp.onDidRestart(() => this.retryWaiting()),
      setup.onMaybeReady(() => this.retryWaiting()),
    );
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
  }

  /** Viewers on the setup panel ask for their trace again (the one that succeeds renders it). */
  private retryWaiting(): void {
    for (const retry of this.waiting.values()) void retry();
  }

  /** A viewer is showing the setup panel (it says what is missing: no notice needed on top). */
  showingSetup(): boolean {
    return this.waiting.size > 0;
  }

  openTraces(): string[] {
    return [...new Set(this.panels.values())];
  }

  openCustomDocument(uri: vscode.Uri): vscode.CustomDocument {
    return { uri, dispose: () => undefined };
  }

  resolveCustomEditor(document: vscode.CustomDocument, panel: vscode.WebviewPanel): void {
    const trace = document.uri.fsPath;
    const opened = Date.now();
    this.panels.set(panel, trace);
    this.openChanged.fire();
    const webview = panel.webview;
    webview.options = {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(this.context.extensionUri, 'dist'), vscode.Uri.joinPath(this.context.extensionUri, 'media')],
    };
    webview.html = this.html(webview, baseName(trace));
    const post = (m: ToWebview) => void webview.postMessage(m);

    // ask the language server while the webview loads; the first 'ready' uses this answer
    let prefetched: Promise<TraceSummary> | undefined = this.lsp.traceSummary(trace, 0, FIRST_PAGE);
    prefetched.catch(() => undefined);
    let lastProblem: InterpreterProblemError | undefined;
    const postSetup = (p: InterpreterProblemError) => {
      lastProblem = p;
      post({ type: 'setup', view: setupView(p.problem, this.setup.source(), this.trust.trusted, this.setup.installing(p.problem.python)) });
    };
    const sendSummary = async () => {
      try {
        const t0 = Date.now();
        const pending = prefetched;
        prefetched = undefined;
        const summary = await (pending ?? this.lsp.traceSummary(trace, 0, FIRST_PAGE));
        this.log.appendLine(`[viewer] ${baseName(trace)}: summary in ${Date.now() - t0} ms (${Date.now() - opened} ms after open)`);
        this.waiting.delete(panel);
        lastProblem = undefined;
        post({ type: 'summary', summary, fileName: baseName(trace) });
        this.postPosition(panel, trace);
      } catch (e) {
        const message = String((e as Error)?.message ?? e);
        this.log.appendLine(`[viewer] ${trace}: ${message}`);
        if (e instanceof InterpreterProblemError) {
          this.waiting.set(panel, retry);
          postSetup(e);
        } else {
          post({ type: 'error', message });
        }
      }
    };
    // one ask at a time per viewer; a trigger during an ask asks once more after it
    let asking: Promise<void> | undefined;
    let askAgain = false;
    const retry = async (): Promise<void> => {
      if (asking) {
        askAgain = true;
        return asking;
      }
      asking = sendSummary();
      try {
        await asking;
      } finally {
        asking = undefined;
      }
      if (askAgain && this.waiting.has(panel)) {
        askAgain = false;
        await retry();
      }
      askAgain = false;
    };

    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.joinPath(document.uri, '..'), baseName(trace)));
    const disposables: vscode.Disposable[] = [
      watcher,
      watcher.onDidChange(() => void retry()),
      webview.onDidReceiveMessage(async (m: FromWebview) => {
        switch (m.type) {
          case 'ready':
            this.log.appendLine(`[viewer] ${baseName(trace)}: page ready ${Date.now() - opened} ms after open`);
            this.postTrust(panel);
            await retry();
            break;
          case 'install':
            if (lastProblem) {
              await this.setup.install(lastProblem.problem.python);
              postSetup(lastProblem); // now "installing…"
            }
            break;
          case 'chooseInterpreter':
            await this.interpreters.pickAnother(document.uri);
            break;
          case 'fetch':
            try {
              const s = await this.lsp.traceSummary(trace, m.offset, m.limit);
              post({ type: 'page', offset: s.offset ?? m.offset, effects: s.effects, total: s.total });
            } catch (e) {
              post({ type: 'error', message: String((e as Error)?.message ?? e) });
            }
            break;
          case 'debug':
            await vscode.commands.executeCommand('prodture.debugTrace', trace);
            break;
          case 'replay':
            await vscode.commands.executeCommand('prodture.replayTrace', trace);
            break;
          case 'manageTrust':
            await this.trust.manage();
            break;
          case 'open':
            await this.openSource(m.path, m.line ?? undefined, trace);
            break;
          case 'jump': {
            const st = this.sessions.forTrace(trace);
            if (st) await this.sessions.jumpToEffect(m.seq, st);
            break;
          }
          case 'painted':
            this.log.appendLine(`[viewer] ${baseName(trace)} painted ${Date.now() - opened} ms after open`);
            break;
        }
      }),
    ];
    panel.onDidDispose(() => {
      disposables.forEach((d) => d.dispose());
      this.panels.delete(panel);
      this.waiting.delete(panel);
      this.openChanged.fire();
    });
  }

  private async openSource(path: string, line: number | undefined, trace: string): Promise<void> {
    let uri = vscode.Uri.file(path);
    if (!path.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(path)) {
      const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(trace));
      if (folder) uri = vscode.Uri.joinPath(folder.uri, path);
    }
    try {
      const pos = new vscode.Position(Math.max(0, (line ?? 1) - 1), 0);
      await vscode.window.showTextDocument(uri, { selection: new vscode.Range(pos, pos), preview: true, viewColumn: vscode.ViewColumn.Beside });
    } catch (e) {
      void vscode.window.showWarningMessage(`prodture: cannot open ${path}: ${String((e as Error)?.message ?? e)}`);
    }
  }

  private postTrust(panel: vscode.WebviewPanel): void {
    const trusted = this.trust.trusted;
    const m: ToWebview = { type: 'trust', trusted, reason: trusted ? null : viewerReason() };
    void panel.webview.postMessage(m);
  }

  private postPositions(): void {
    for (const [panel, trace] of this.panels) this.postPosition(panel, trace);
  }

  private postPosition(panel: vscode.WebviewPanel, trace: string): void {
    const st = this.sessions.forTrace(trace);
    const m: ToWebview = {
      type: 'position',
      active: !!st,
      effect: st?.position?.effect ?? null,
      nextEffect: st?.position?.nextEffect ?? null,
    };
    void panel.webview.postMessage(m);
  }

  private assets: { js: string; css: string } | undefined;

  /** The page's script and style, inlined: in a remote window every resource is a round trip. */
  private inlineAssets(): { js: string; css: string } {
    if (!this.assets) {
      const read = (...p: string[]) => fs.readFileSync(vscode.Uri.joinPath(this.context.extensionUri, ...p).fsPath, 'utf8');
      this.assets = { js: read('dist', 'webview.js').replace(/<\/script/gi, '<\\/script'), css: read('media', 'viewer.css') };
    }
    return this.assets;
  }

  private html(webview: vscode.Webview, title: string): string {
    const nonce = [...Array(32)].map(() => Math.floor(Math.random() * 36).toString(36)).join('');
    const { js, css } = this.inlineAssets();
    const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'nonce-${nonce}'; img-src ${webview.cspSource} data:; font-src ${webview.cspSource}; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<style nonce="${nonce}">${css}</style>
<title>${esc(title)}</title>
</head>
<body>
<div id="prodture-viewer" data-state="loading">
  <div class="loading">Loading ${esc(title)}…</div>
</div>
<script nonce="${nonce}">${js}</script>
</body>
</html>`;
  }
}
