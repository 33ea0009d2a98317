// Shapes of the custom messages shared with the Python side (protocol/CONTRACT-NAMES.md).
// Plain types only: this module is imported by the extension host, the webview and the unit tests.
import type { SetupView } from './setup';

/** One effect as `prodture/traceSummary` (LSP) returns it. Strings are short renderings. */
export interface SummaryEffect {
  seq: number;
  type: string;
  request?: string | null;
  ok: boolean;
  result?: string | null;
  error?: string | null;
  durationMs?: number | null;
  path?: string | null;
  line?: number | null;
  function?: string | null;
}

export interface TraceHeader {
  handler?: string;
  traceId?: string;
  startedAt?: string;
  python?: string;
  formatVersion?: number | string;
  fingerprint?: string;
}

export interface TraceOutcome {
  ok: boolean;
  value?: string | null;
  error?: string | null;
  traceback?: string | null;
}

/** Response of the LSP request `prodture/traceSummary` {path, offset, limit}. */
export interface TraceSummary {
  header: TraceHeader;
  input?: string | null;
  effects: SummaryEffect[];
  total: number;
  offset: number;
  outcome: TraceOutcome | null;
  complete: boolean;
  failedEffect?: number | null;
}

/** One effect as the DAP custom request `prodture/effects` returns it: the same view as the LSP's. */
export type DapEffect = SummaryEffect;

export interface DapEffectsResponse {
  effects: DapEffect[];
  outcome?: { ok: boolean; summary?: string | null } | null;
  complete?: boolean;
}

/** Body of the DAP custom event `prodture/position`, sent after every stop. */
export interface PositionEvent {
  step: number;
  /** number of effects performed so far */
  effect: number;
  effectCount: number;
  path?: string | null;
  line?: number | null;
  /** seq of the next effect, or null when none is left */
  nextEffect?: number | null;
}

export const LSP_TRACE_SUMMARY = 'prodture/traceSummary';
export const LSP_SET_ACTIVE_TRACES = 'prodture/setActiveTraces';
export const LSP_SET_WORKSPACE_TRUST = 'prodture/setWorkspaceTrust';
export const DAP_EFFECTS = 'prodture/effects';
export const DAP_JUMP_TO_EFFECT = 'prodture/jumpToEffect';
export const DAP_POSITION_EVENT = 'prodture/position';
export const DEBUG_TYPE = 'prodture';
export const VIEW_TYPE = 'prodture.traceViewer';
export const TRACE_EXT = '.prodtrace';

/** Messages from the webview to the extension host. */
export type FromWebview =
  | { type: 'ready' }
  | { type: 'fetch'; offset: number; limit: number }
  | { type: 'debug' }
  | { type: 'replay' }
  | { type: 'open'; path: string; line?: number | null }
  | { type: 'jump'; seq: number }
  | { type: 'manageTrust' }
  | { type: 'painted'; ms: number }
  /** the setup panel's buttons: install prodture into the interpreter, or choose another one */
  | { type: 'install' }
  | { type: 'chooseInterpreter' };

/** Messages from the extension host to the webview. */
export type ToWebview =
  | { type: 'summary'; summary: TraceSummary; fileName: string }
  | { type: 'page'; offset: number; effects: SummaryEffect[]; total: number }
  | { type: 'error'; message: string; detail?: string }
  | { type: 'position'; effect: number | null; nextEffect: number | null; active: boolean }
  /** Replay and Debug run the folder's code: off (with `reason`) while the folder is untrusted */
  | { type: 'trust'; trusted: boolean; reason: string | null }
  /** the interpreter cannot serve the viewer (first run): what is missing and the ways out */
  | { type: 'setup'; view: SetupView };
