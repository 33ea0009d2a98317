// Tracks prodture debug sessions: their trace, the recorded effects (`prodture/effects`) and the
// position (`prodture/position`) — feeds the timeline view, the status bar and the trace viewers.
import * as vscode from 'vscode';
import { DAP_EFFECTS, DAP_JUMP_TO_EFFECT, DAP_POSITION_EVENT, DEBUG_TYPE, DapEffect, DapEffectsResponse, PositionEvent } from './lib/protocol';
import { statusAccessibleText, statusText } from './lib/timeline';
import { withTimeout } from './lib/timeout';

/** How long the adapter may take to list the recorded effects. */
const EFFECTS_TIMEOUT_MS = 10_000;

export interface SessionState {
  session: vscode.DebugSession;
  trace: string;
  effects: DapEffect[] | undefined;
  outcome: DapEffectsResponse['outcome'];
  complete: boolean;
  position: PositionEvent | undefined;
  loading?: Promise<void>;
}

export class ReplaySessions implements vscode.Disposable {
  private states = new Map<string, SessionState>();
  private disposables: vscode.Disposable[] = [];
  private readonly changed = new vscode.EventEmitter<SessionState | undefined>();
  /** fires when the effects or the position of a session change (undefined: sessions changed) */
  readonly onDidChange = this.changed.event;
  private readonly status: vscode.StatusBarItem;

  constructor(private readonly log: vscode.OutputChannel) {
    this.status = vscode.window.createStatusBarItem('prodture.position', vscode.StatusBarAlignment.Left, 50);
    this.status.name = 'Prodture replay position';
    this.status.command = 'prodture.timeline.focus';
    this.status.tooltip = 'Position in the recorded trace — click to show the Replay timeline';
    this.disposables.push(
      this.changed,
      this.status,
      vscode.debug.registerDebugAdapterTrackerFactory(DEBUG_TYPE, { createDebugAdapterTracker: (s) => this.tracker(s) }),
      vscode.debug.onDidStartDebugSession((s) => this.started(s)),
      vscode.debug.onDidTerminateDebugSession((s) => this.terminated(s)),
      vscode.debug.onDidChangeActiveDebugSession(() => {
        this.updateStatus();
        this.changed.fire(undefined);
      }),
    );
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
  }

  /** The state of the active prodture session, if the active session is one. */
  active(): SessionState | undefined {
    const s = vscode.debug.activeDebugSession;
    if (s && s.type === DEBUG_TYPE) return this.states.get(s.id);
    // fall back on the only prodture session
    if (this.states.size === 1) return this.states.values().next().value;
    return undefined;
  }

  all(): SessionState[] {
    return [...this.states.values()];
  }

  forTrace(trace: string): SessionState | undefined {
    return this.all().find((s) => s.trace === trace);
  }

  /** Stop every prodture session replaying `trace` (Debug on it again starts afresh). */
  async stopTrace(trace: string): Promise<void> {
    for (const st of this.all()) if (st.trace === trace) await vscode.debug.stopDebugging(st.session);
  }

  traces(): string[] {
    return this.all().map((s) => s.trace);
  }

  private ensure(session: vscode.DebugSession): SessionState {
    let st = this.states.get(session.id);
    if (!st) {
      st = { session, trace: String(session.configuration.trace ?? ''), effects: undefined, outcome: undefined, complete: false, position: undefined };
      this.states.set(session.id, st);
      void vscode.commands.executeCommand('setContext', 'prodture.timelineHasData', true);
    }
    return st;
  }

  private started(session: vscode.DebugSession): void {
    if (session.type !== DEBUG_TYPE) return;
    this.ensure(session);
    this.updateStatus();
    this.changed.fire(undefined);
  }

  private terminated(session: vscode.DebugSession): void {
    if (!this.states.delete(session.id)) return;
    if (this.states.size === 0) void vscode.commands.executeCommand('setContext', 'prodture.timelineHasData', false);
    this.updateStatus();
    this.changed.fire(undefined);
  }

  private tracker(session: vscode.DebugSession): vscode.DebugAdapterTracker {
    return {
      onDidSendMessage: (m: { type?: string; event?: string; command?: string; success?: boolean; body?: unknown }) => {
        if (m.type === 'event' && m.event === DAP_POSITION_EVENT) {
          const st = this.ensure(session);
          st.position = m.body as PositionEvent;
          if (!st.effects) void this.load(st);
          this.updateStatus();
          this.changed.fire(st);
        }
      },
      onError: (e) => this.log.appendLine(`[dap] adapter error: ${String(e)}`),
      onExit: (code, signal) => {
        if (code) this.log.appendLine(`[dap] adapter exited with code ${code}${signal ? ` (${signal})` : ''}`);
      },
    };
  }

  /** Ask the adapter for the recorded effects (once per session unless forced). */
  load(st: SessionState, force = false): Promise<void> {
    if (st.loading && !force) return st.loading;
    st.loading = (async () => {
      try {
        const t0 = Date.now();
        const r = (await withTimeout(st.session.customRequest(DAP_EFFECTS, {}), EFFECTS_TIMEOUT_MS, `no answer in ${EFFECTS_TIMEOUT_MS / 1000} s`)) as DapEffectsResponse;
        st.effects = r?.effects ?? [];
        st.outcome = r?.outcome;
        st.complete = r?.complete !== false;
        this.log.appendLine(`[dap] ${DAP_EFFECTS}: ${st.effects.length} effects in ${Date.now() - t0} ms`);
        this.changed.fire(st);
      } catch (e) {
        this.log.appendLine(`[dap] ${DAP_EFFECTS} failed: ${String((e as Error)?.message ?? e)}`);
        st.loading = undefined;
      }
    })();
    return st.loading;
  }

  async jumpToEffect(seq: number, st = this.active()): Promise<void> {
    if (!st) {
      void vscode.window.showInformationMessage('Start a prodture debug session to jump to an effect.');
      return;
    }
    try {
      await st.session.customRequest(DAP_JUMP_TO_EFFECT, { effect: seq });
    } catch (e) {
      void vscode.window.showErrorMessage(`prodture: could not jump to effect #${seq}: ${String((e as Error)?.message ?? e)}`);
    }
  }

  private updateStatus(): void {
    const st = this.active();
    if (!st) {
      this.status.hide();
      return;
    }
    this.status.text = statusText(st.position);
    this.status.accessibilityInformation = { label: statusAccessibleText(st.position) };
    this.status.show();
  }
}
