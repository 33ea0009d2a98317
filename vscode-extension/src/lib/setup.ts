// The extension's first run: the chosen interpreter lacks prodture (every new user's case). What
// the trace viewer says, what "Install prodture" runs and where from, and how often it looks again
// — no VS Code API here.
import { dirName } from './paths';
import { PythonSource, shellQuote } from './python';
import { untrustedMessage } from './trust';

/** Why the interpreter cannot serve the viewer. */
export type ProblemKind = 'not-installed' | 'not-found' | 'untrusted-location';

export interface InterpreterProblem {
  kind: ProblemKind;
  python: string;
  source: PythonSource;
  /** the one-line message with its fix (also written to the log) */
  message: string;
}

/** Where `pip install` takes prodture from. */
export interface InstallSource {
  /** the pip requirement: a project folder with extras, or the published name */
  requirement: string;
  /** install the folder editable (the prodture project itself is open: edits apply at once) */
  editable: boolean;
  /** one line for the viewer: where it comes from */
  label: string;
}

export const PUBLISHED_REQUIREMENT = 'prodture[debug]';

/** True when a pyproject.toml's text declares the project `prodture` ([project] name). */
export function isProdtureProject(pyproject: string): boolean {
  let inProject = false;
  for (const raw of pyproject.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      inProject = line === '[project]';
      continue;
    }
    const m = /^name\s*=\s*["']([^"']+)["']/.exec(line);
    if (inProject && m) return m[1].toLowerCase().replace(/[-_.]+/g, '-') === 'prodture';
  }
  return false;
}

/**
 * The prodture project that holds one of `folders` (the folder itself or a parent: an example
 * inside a checkout of prodture), found by reading each pyproject.toml on the way up.
 * `readText` returns undefined for a file that does not exist.
 */
export function findProdtureProject(folders: readonly string[], readText: (file: string) => string | undefined): string | undefined {
  for (const folder of folders) {
    let dir = folder.replace(/[\\/]+$/, '') || folder;
    for (;;) {
      const sep = dir.includes('\\') && !dir.includes('/') ? '\\' : '/';
      const text = readText(`${dir}${dir.endsWith(sep) ? '' : sep}pyproject.toml`);
      if (text !== undefined && isProdtureProject(text)) return dir;
      const up = dirName(dir);
      if (up === dir || up === '.' || !up) break;
      dir = up;
    }
  }
  return undefined;
}

/** From the open prodture project when there is one (works offline, matches the code), else the published package. */
export function installSource(project: string | undefined): InstallSource {
  if (project) return { requirement: `${project}[debug]`, editable: true, label: `from the project at ${project}` };
  return { requirement: PUBLISHED_REQUIREMENT, editable: false, label: `the published package ${PUBLISHED_REQUIREMENT}` };
}

/** Arguments of `<python> …` that install prodture. */
export function installArgs(source: InstallSource): string[] {
  return ['-m', 'pip', 'install', ...(source.editable ? ['-e'] : []), source.requirement];
}

/** The command line typed into the install terminal. */
export function installCommandLine(python: string, source: InstallSource): string {
  return [python, ...installArgs(source)].map(shellQuote).join(' ');
}

const SOURCE_WORDS: Record<PythonSource, string> = {
  'launch.json': 'the launch configuration',
  setting: 'the prodture.python setting',
  'python-extension': "the Python extension's selected interpreter",
  default: 'the default (no prodture.python setting, no Python extension)',
};

/** The panel the viewer shows instead of the trace. */
export interface SetupView {
  title: string;
  /** one line each: which interpreter, chosen how, what it lacks */
  lines: string[];
  python: string;
  installLabel: string;
  /** the command the install button types into the terminal */
  command: string;
  /** the install button is off, with this one-line reason; null when it is on */
  installOff: string | null;
  /** "Choose another interpreter…" is always offered */
  chooseLabel: string;
  /** shown while an install runs in the terminal */
  installing: boolean;
}

export function setupView(p: InterpreterProblem, source: InstallSource, trusted: boolean, installing: boolean): SetupView {
  const lines = [`Interpreter: ${p.python} — from ${SOURCE_WORDS[p.source]}.`];
  let installOff: string | null = trusted ? null : untrustedMessage('install');
  let title: string;
  if (p.kind === 'not-installed') {
    title = 'prodture is not installed in the selected interpreter';
    lines.push('The trace viewer reads traces through prodture\'s language server (python -m prodture.lsp), which this interpreter cannot import.');
    lines.push(`Install puts prodture with its debugger extras into this interpreter, ${source.label}, in a terminal you can watch.`);
  } else if (p.kind === 'not-found') {
    title = 'The selected Python interpreter could not be started';
    lines.push('Install Python 3.10+ or choose an interpreter that exists.');
    installOff = 'There is no interpreter to install into: choose another interpreter.';
  } else {
    title = 'The selected interpreter is inside this untrusted folder';
    lines.push('An interpreter inside an untrusted folder is the folder\'s code: it is not started. Choose one outside the folder, or trust the folder.');
    installOff = installOff ?? 'Installing into an interpreter inside an untrusted folder is off.';
  }
  lines.push('The trace shows here as soon as the interpreter has prodture — no need to reopen it.');
  return {
    title,
    lines,
    python: p.python,
    installLabel: `Install prodture into ${p.python}`,
    command: installCommandLine(p.python, source),
    installOff,
    chooseLabel: 'Choose another interpreter…',
    installing,
  };
}

/**
 * While an install runs, how long to wait before looking again (attempt 0, 1, …): 1 s doubling
 * to a 15 s ceiling. The terminal's end and the window's focus also trigger a look.
 */
export function probeDelayMs(attempt: number): number {
  return Math.min(15_000, 1000 * 2 ** Math.max(0, Math.min(attempt, 10)));
}

/** Stop looking after this long without a result (the terminal's end still triggers a look). */
export const PROBE_GIVE_UP_MS = 15 * 60_000;

/** Thrown by the language client when its interpreter cannot run the server; the viewer shows it as a panel. */
export class InterpreterProblemError extends Error {
  constructor(readonly problem: InterpreterProblem) {
    super(problem.message);
    this.name = 'InterpreterProblemError';
  }
}
