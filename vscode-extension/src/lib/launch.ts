// Filling in and validating a `prodture` launch configuration — no VS Code API here.
import { DEBUG_TYPE, TRACE_EXT } from './protocol';
import { baseName, dirName } from './paths';

export interface LaunchConfig {
  type?: string;
  request?: string;
  name?: string;
  trace?: string;
  handler?: string;
  python?: string;
  cwd?: string;
  env?: Record<string, string>;
  justMyCode?: boolean;
  stopOnEntry?: boolean;
  replayMode?: string;
  [key: string]: unknown;
}

export interface LaunchContext {
  /** path of the trace open in the active editor tab (trace viewer), if any */
  activeTrace?: string;
  /** folder of the workspace that contains a path (or undefined) */
  workspaceFolderOf?: (path: string) => string | undefined;
  /** first workspace folder (used when the trace is outside every folder) */
  defaultFolder?: string;
}

export type LaunchResult = { ok: true; config: LaunchConfig } | { ok: false; error: string };

export function isTracePath(p: string | undefined | null): p is string {
  return typeof p === 'string' && p.toLowerCase().endsWith(TRACE_EXT);
}

/** A launch configuration for one trace (Debug button, lens, command). */
export function configForTrace(trace: string, cwd?: string): LaunchConfig {
  const c: LaunchConfig = {
    type: DEBUG_TYPE,
    request: 'launch',
    name: `Debug ${baseName(trace)}`,
    trace,
  };
  if (cwd) c.cwd = cwd;
  return c;
}

/**
 * Resolve a configuration before variable substitution: F5 without launch.json gets one for the
 * open trace; `${file}` is replaced by the trace open in a trace viewer (custom editors are not
 * always what `${file}` means).
 */
export function resolveBeforeSubstitution(config: LaunchConfig, ctx: LaunchContext): LaunchResult {
  const empty = !config.type && !config.request && !config.name;
  if (empty) {
    if (!ctx.activeTrace) {
      return { ok: false, error: 'Open a .prodtrace file (or add a "prodture" launch configuration with a "trace" path) to start a prodture debug session.' };
    }
    return { ok: true, config: configForTrace(ctx.activeTrace) };
  }
  const c: LaunchConfig = { ...config };
  if (!c.type) c.type = DEBUG_TYPE;
  if (!c.request) c.request = 'launch';
  if (!c.name) c.name = 'Prodture';
  if ((c.trace === undefined || c.trace === '' || c.trace === '${file}') && ctx.activeTrace) {
    c.trace = ctx.activeTrace;
  }
  return { ok: true, config: c };
}

/** Resolve after substitution: check the trace, fill the cwd. */
export function resolveAfterSubstitution(config: LaunchConfig, ctx: LaunchContext): LaunchResult {
  const c: LaunchConfig = { ...config };
  if (c.request !== 'launch') {
    return { ok: false, error: `prodture: unsupported request "${String(c.request)}": use "request": "launch" with a "trace" path.` };
  }
  if (typeof c.trace !== 'string' || c.trace.trim() === '') {
    return { ok: false, error: 'prodture: the launch configuration has no "trace": add "trace": "${file}" (with the trace open) or the path of a .prodtrace file.' };
  }
  if (!isTracePath(c.trace)) {
    return { ok: false, error: `prodture: "trace" must be a .prodtrace file, got ${c.trace}: open the trace and press F5 again, or fix "trace" in launch.json.` };
  }
  if (!c.cwd) {
    const folder = ctx.workspaceFolderOf?.(c.trace) ?? ctx.defaultFolder ?? dirName(c.trace);
    c.cwd = folder;
  }
  return { ok: true, config: c };
}
