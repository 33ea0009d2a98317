// prodture for VS Code — the wiring: trace viewer, `prodture` debugger (python -m prodture.adapter),
// Replay command, Replay timeline, status bar position and the language client
// (python -m prodture.lsp). Each part lives in its own module; actions that run the folder's code
// go through the trust gate (trust.ts).
import * as vscode from 'vscode';
import { DebugSupport } from './debugSupport';
import { Interpreters } from './interpreter';
import { LanguageServer } from './lsp';
import { ReplayRunner } from './replayRunner';
import { ReplaySessions } from './sessions';
import { TimelineView } from './timelineView';
import { showTrace } from './traces';
import { WorkspaceTrustGate } from './trust';
import { TraceViewerProvider } from './viewer';
import { InterpreterSetup } from './setup';
import { registerTraceStore } from './traceStore';
import { registerEventStore } from './eventStore';
import { TimelineNode } from './lib/timeline';

export function activate(context: vscode.ExtensionContext): { sessions: ReplaySessions } {
  const log = vscode.window.createOutputChannel('Prodture');
  const trust = new WorkspaceTrustGate(log);
  const interpreters = new Interpreters(log);
  const lsp = new LanguageServer(interpreters, trust, context.extensionUri.fsPath, log);
  const sessions = new ReplaySessions(log);
  const setup = new InterpreterSetup(interpreters, trust, log);
  const viewer = new TraceViewerProvider(context, lsp, sessions, trust, interpreters, setup, log);
  // an open viewer's setup panel already says it, with the same buttons
  lsp.interpreterProblemNotice = (e) => {
    if (!viewer.showingSetup()) void setup.notify(e);
  };
  const timeline = new TimelineView(sessions);
  const debug = new DebugSupport(interpreters, sessions, trust, log);
  const replay = new ReplayRunner(interpreters, trust);

  const pushActive = () => lsp.setActiveTraces([...viewer.openTraces(), ...sessions.traces()]);

  context.subscriptions.push(
    log,
    trust,
    interpreters,
    lsp,
    sessions,
    setup,
    viewer,
    timeline,
    replay,
    debug.register(),
    viewer.onDidChangeOpenTraces(pushActive),
    sessions.onDidChange((st) => {
      if (!st) pushActive();
    }),
    vscode.commands.registerCommand('prodture.debugTrace', (arg?: unknown) => debug.debugTrace(arg)),
    vscode.commands.registerCommand('prodture.replayTrace', (arg?: unknown) => replay.replayTrace(arg)),
    vscode.commands.registerCommand('prodture.showTrace', (arg?: unknown) => showTrace(arg)),
    vscode.commands.registerCommand('prodture.jumpToEffect', (arg?: number | TimelineNode) => timeline.jumpTo(arg)),
    vscode.commands.registerCommand('prodture.refreshTimeline', () => timeline.refresh()),
    ...registerEventStore(interpreters, trust, log),
  );

  context.subscriptions.push(...registerTraceStore(context, interpreters, trust, log));
  lsp.warmUp();
  return { sessions };
}

export function deactivate(): void {
  // everything is disposed through context.subscriptions
}
