// prodture for VS Code: trace viewer, `prodture` debugger (python -m prodture.adapter), Replay
// timeline, status bar position and the language client (python -m prodture.lsp).
import * as vscode from 'vscode';
import * as fs from 'fs';
import { spawn } from 'child_process';
import { Interpreters } from './interpreter';
import { LanguageServer } from './lsp';
import { ReplaySessions } from './sessions';
import { TimelineView } from './timelineView';
import { TraceViewerProvider } from './viewer';
import { registerEventStore } from './eventStore';
import { DEBUG_TYPE, TRACE_EXT, VIEW_TYPE } from './lib/protocol';
import { LaunchConfig, LaunchContext, baseName, configForTrace, isTracePath, resolveAfterSubstitution, resolveBeforeSubstitution } from './lib/launch';
import { TimelineNode } from './lib/timeline';

let replayChannel: vscode.OutputChannel | undefined;
const running = new Map<string, vscode.DebugSession>();

/** Path of the trace in the active editor tab (trace viewer or text editor). */
function activeTracePath(): string | undefined {
  const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
  const input = tab?.input;
  if (input instanceof vscode.TabInputCustom && input.viewType === VIEW_TYPE) return input.uri.fsPath;
  if (input instanceof vscode.TabInputText && isTracePath(input.uri.fsPath)) return input.uri.fsPath;
  const doc = vscode.window.activeTextEditor?.document;
  if (doc && isTracePath(doc.uri.fsPath)) return doc.uri.fsPath;
  return undefined;
}

function launchContext(): LaunchContext {
  return {
    activeTrace: activeTracePath(),
    workspaceFolderOf: (p) => vscode.workspace.getWorkspaceFolder(vscode.Uri.file(p))?.uri.fsPath,
    defaultFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
  };
}

/** A trace path from a command argument (string, Uri, or lens argument), the active tab, or a pick. */
async function traceArg(arg: unknown, action: string): Promise<string | undefined> {
  if (typeof arg === 'string' && arg) return arg;
  if (arg instanceof vscode.Uri) return arg.fsPath;
  if (Array.isArray(arg) && typeof arg[0] === 'string') return arg[0];
  if (arg && typeof arg === 'object' && 'fsPath' in arg && typeof (arg as { fsPath: unknown }).fsPath === 'string') return (arg as { fsPath: string }).fsPath;
  const active = activeTracePath();
  if (active) return active;
  const files = await vscode.workspace.findFiles(`**/*${TRACE_EXT}`, '**/node_modules/**', 500);
  if (files.length === 0) {
    void vscode.window.showInformationMessage(`No ${TRACE_EXT} file in this workspace: record one, or open a trace first.`);
    return undefined;
  }
  files.sort((a, b) => b.fsPath.localeCompare(a.fsPath));
  const pick = await vscode.window.showQuickPick(
    files.map((f) => ({ label: baseName(f.fsPath), description: vscode.workspace.asRelativePath(f), uri: f })),
    { placeHolder: `Trace to ${action}` },
  );
  return pick?.uri.fsPath;
}

class DebugSupport implements vscode.DebugConfigurationProvider, vscode.DebugAdapterDescriptorFactory {
  constructor(
    private readonly interpreters: Interpreters,
    private readonly log: vscode.OutputChannel,
  ) {}

  resolveDebugConfiguration(_folder: vscode.WorkspaceFolder | undefined, config: vscode.DebugConfiguration): vscode.DebugConfiguration | undefined {
    const r = resolveBeforeSubstitution(config as LaunchConfig, launchContext());
    if (!r.ok) {
      void vscode.window.showErrorMessage(r.error);
      return undefined;
    }
    return r.config as vscode.DebugConfiguration;
  }

  async resolveDebugConfigurationWithSubstitutedVariables(folder: vscode.WorkspaceFolder | undefined, config: vscode.DebugConfiguration): Promise<vscode.DebugConfiguration | undefined> {
    const ctx = launchContext();
    if (folder) ctx.defaultFolder = folder.uri.fsPath;
    const r = resolveAfterSubstitution(config as LaunchConfig, ctx);
    if (!r.ok) {
      void vscode.window.showErrorMessage(r.error);
      return undefined;
    }
    const c = r.config;
    const trace = c.trace as string;
    if (!fs.existsSync(trace)) {
      void vscode.window.showErrorMessage(`prodture: trace file not found: ${trace}: record it again or fix "trace" in the launch configuration.`);
      return undefined;
    }
    const { python } = await this.interpreters.choose(vscode.Uri.file(trace), c.python);
    const problem = await this.interpreters.check(python, 'prodture.adapter', c.cwd);
    if (problem) {
      void this.interpreters.showError(problem, python);
      return undefined;
    }
    c.python = python;
    return c as vscode.DebugConfiguration;
  }

  async provideDebugConfigurations(folder: vscode.WorkspaceFolder | undefined): Promise<vscode.DebugConfiguration[]> {
    const pattern = folder ? new vscode.RelativePattern(folder, `**/*${TRACE_EXT}`) : `**/*${TRACE_EXT}`;
    const files = await vscode.workspace.findFiles(pattern, '**/node_modules/**', 20);
    return files.map((f) => configForTrace(f.fsPath, folder?.uri.fsPath) as vscode.DebugConfiguration);
  }

  createDebugAdapterDescriptor(session: vscode.DebugSession): vscode.DebugAdapterDescriptor {
    const python = String(session.configuration.python || 'python3');
    const cwd = session.configuration.cwd ? String(session.configuration.cwd) : undefined;
    this.log.appendLine(`[dap] starting ${python} -m prodture.adapter for ${String(session.configuration.trace)}`);
    return new vscode.DebugAdapterExecutable(python, ['-m', 'prodture.adapter'], {
      cwd,
      env: { PYTHONUNBUFFERED: '1', PYDEVD_DISABLE_FILE_VALIDATION: '1' },
    });
  }
}

async function debugTrace(arg: unknown): Promise<boolean> {
  const trace = await traceArg(arg, 'debug');
  if (!trace) return false;
  // Debug on a trace that is already being debugged starts it afresh
  for (const s of running.values()) {
    if (s.type === DEBUG_TYPE && s.configuration.trace === trace) await vscode.debug.stopDebugging(s);
  }
  const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(trace));
  return vscode.debug.startDebugging(folder, configForTrace(trace, folder?.uri.fsPath) as vscode.DebugConfiguration);
}

async function replayTrace(arg: unknown, interpreters: Interpreters): Promise<number | undefined> {
  const trace = await traceArg(arg, 'replay');
  if (!trace) return undefined;
  const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(trace));
  const cwd = folder?.uri.fsPath;
  const { python } = await interpreters.choose(vscode.Uri.file(trace));
  const problem = await interpreters.check(python, 'prodture.cli', cwd);
  if (problem) {
    void interpreters.showError(problem, python);
    return undefined;
  }
  replayChannel ??= vscode.window.createOutputChannel('Prodture Replay');
  const out = replayChannel;
  out.clear();
  out.show(true);
  out.appendLine(`$ ${python} -m prodture.cli replay ${trace}`);
  return new Promise((resolve) => {
    const child = spawn(python, ['-m', 'prodture.cli', 'replay', trace], { cwd, env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    let firstErr = '';
    let lastOut = '';
    child.stdout.on('data', (d: Buffer) => {
      const s = d.toString();
      out.append(s);
      const lines = s.trim().split('\n');
      if (lines.length && lines[lines.length - 1]) lastOut = lines[lines.length - 1];
    });
    child.stderr.on('data', (d: Buffer) => {
      const s = d.toString();
      out.append(s);
      if (!firstErr) firstErr = s.split('\n')[0];
    });
    child.on('error', (e) => {
      out.appendLine(`prodture: could not start ${python}: ${e.message}`);
      resolve(undefined);
    });
    child.on('close', (code) => {
      out.appendLine(`[exit ${code}]`);
      const name = baseName(trace);
      if (code === 0) void vscode.window.showInformationMessage(`Replay of ${name} reproduced the recording${lastOut ? `: ${lastOut}` : '.'}`);
      else if (code === 1) void vscode.window.showWarningMessage(`Replay of ${name} diverges from the recording${lastOut ? `: ${lastOut}` : ''} (see "Prodture Replay").`);
      else void vscode.window.showErrorMessage(firstErr || `Replay of ${name} failed with exit code ${code} (see "Prodture Replay").`);
      resolve(code ?? undefined);
    });
  });
}

async function showTrace(arg: unknown): Promise<void> {
  const trace = await traceArg(arg, 'show');
  if (!trace) return;
  await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(trace), VIEW_TYPE);
}

export function activate(context: vscode.ExtensionContext): { sessions: ReplaySessions } {
  const log = vscode.window.createOutputChannel('Prodture');
  const interpreters = new Interpreters(log);
  const lsp = new LanguageServer(interpreters, log);
  const sessions = new ReplaySessions(log);
  const viewer = new TraceViewerProvider(context, lsp, sessions, log);
  const timeline = new TimelineView(sessions);
  const dbg = new DebugSupport(interpreters, log);

  const pushActive = () => lsp.setActiveTraces([...viewer.openTraces(), ...sessions.traces()]);

  context.subscriptions.push(
    log,
    interpreters,
    lsp,
    sessions,
    viewer,
    timeline,
    viewer.onDidChangeOpenTraces(pushActive),
    sessions.onDidChange((st) => {
      if (!st) pushActive();
    }),
    vscode.debug.onDidStartDebugSession((s) => running.set(s.id, s)),
    vscode.debug.onDidTerminateDebugSession((s) => running.delete(s.id)),
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, dbg),
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, { provideDebugConfigurations: (f) => dbg.provideDebugConfigurations(f) }, vscode.DebugConfigurationProviderTriggerKind.Dynamic),
    vscode.debug.registerDebugAdapterDescriptorFactory(DEBUG_TYPE, dbg),
    vscode.commands.registerCommand('prodture.debugTrace', (arg?: unknown) => debugTrace(arg)),
    vscode.commands.registerCommand('prodture.replayTrace', (arg?: unknown) => replayTrace(arg, interpreters)),
    vscode.commands.registerCommand('prodture.showTrace', (arg?: unknown) => showTrace(arg)),
    vscode.commands.registerCommand('prodture.jumpToEffect', async (arg?: number | TimelineNode) => {
      let seq: number | undefined = typeof arg === 'number' ? arg : arg && arg.kind === 'effect' ? arg.effect.seq : undefined;
      if (seq === undefined) {
        const v = await vscode.window.showInputBox({ prompt: 'Effect number to jump to', validateInput: (s) => (/^\d+$/.test(s) ? undefined : 'a number') });
        if (!v) return;
        seq = Number(v);
      }
      await sessions.jumpToEffect(seq);
    }),
    vscode.commands.registerCommand('prodture.refreshTimeline', () => timeline.refresh()),
    ...registerEventStore(interpreters, log),
  );

  lsp.warmUp();
  return { sessions };
}

export function deactivate(): void {
  replayChannel?.dispose();
  replayChannel = undefined;
}
