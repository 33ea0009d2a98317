// What Restricted Mode (VS Code's Workspace Trust) turns off, and the one-line reasons we show —
// no VS Code API here. Reading a trace runs no code of the folder; replaying or debugging it
// imports the handler's modules from the folder, which runs the folder's code.
import { isInside } from './paths';

/** The actions that run the folder's code (a store command runs Python in the folder, whose
 * `pyproject.toml` and modules are the folder's). */
export type GatedAction = 'replay' | 'debug' | 'store' | 'books' | 'install';

/** VS Code's command that opens the Workspace Trust editor ("Workspaces: Manage Workspace Trust"). */
export const MANAGE_TRUST_COMMAND = 'workbench.trust.manage';
export const MANAGE_TRUST_LABEL = 'Manage Workspace Trust';

const ACTION_NAME: Record<GatedAction, string> = { replay: 'Replay', debug: 'Debug', store: 'Opening a trace from a store', books: 'Show Event Books', install: 'Installing prodture' };
const ACTION_VERB: Record<GatedAction, string> = { replay: 'replaying a trace', debug: 'debugging a trace', store: 'reaching the store', books: 'reading the event books', install: 'installing it with pip' };

/** One line: the action is off, why, and how to trust the folder. */
export function untrustedMessage(action: GatedAction): string {
  return `${ACTION_NAME[action]} is off in Restricted Mode: this folder is not trusted and ${ACTION_VERB[action]} runs its code. To trust it, run "Workspaces: ${MANAGE_TRUST_LABEL}" and choose Trust.`;
}

/** The reason the trace viewer shows under its disabled Replay and Debug buttons. */
export function viewerReason(): string {
  return `Replay and Debug are off in Restricted Mode: this folder is not trusted and they run its code. To trust it, use "${MANAGE_TRUST_LABEL}".`;
}

/**
 * An interpreter that lives inside an untrusted workspace folder (say, its `.venv`) is the
 * folder's code too: it is not started. Returns the one-line refusal, or undefined when fine.
 */
export function untrustedInterpreterProblem(python: string, trusted: boolean, folders: readonly string[]): string | undefined {
  if (trusted) return undefined;
  if (!folders.some((f) => isInside(python, f))) return undefined;
  return `prodture: the interpreter ${python} is inside this untrusted folder, so it is not started: set prodture.python in your user settings to an interpreter outside it, or trust the folder ("${MANAGE_TRUST_LABEL}").`;
}

/**
 * Environment for a Python process started while the folder is untrusted: PYTHONSAFEPATH keeps
 * the working directory off `sys.path` (Python 3.11+), so no module of the folder shadows ours.
 */
export function safePythonEnv(base: Record<string, string | undefined>, trusted: boolean): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...base, PYTHONUNBUFFERED: '1' };
  if (!trusted) env.PYTHONSAFEPATH = '1';
  return env;
}
