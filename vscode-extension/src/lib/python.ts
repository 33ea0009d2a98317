// Which interpreter runs the adapter, the language server and the CLI — no VS Code API here.

export type PythonSource = 'launch.json' | 'setting' | 'python-extension' | 'default';

export interface PythonChoice {
  python: string;
  source: PythonSource;
}

export interface PythonCandidates {
  /** `python` attribute of the launch configuration (debug sessions only) */
  launchPython?: string | null;
  /** value of the `prodture.python` setting ('' = not set) */
  setting?: string | null;
  /** executable of the Python extension's active environment, when that extension is installed */
  pythonExtension?: string | null;
  /** last resort */
  fallback?: string;
}

const nonEmpty = (s: string | null | undefined): s is string => typeof s === 'string' && s.trim() !== '';

/**
 * The order: an explicit `python` in the launch configuration, then an explicit `prodture.python`
 * setting (so that the fix we suggest — "set prodture.python" — always takes effect), then the
 * Python extension's active environment, then `python3`.
 */
export function choosePython(c: PythonCandidates): PythonChoice {
  if (nonEmpty(c.launchPython)) return { python: c.launchPython.trim(), source: 'launch.json' };
  if (nonEmpty(c.setting)) return { python: c.setting.trim(), source: 'setting' };
  if (nonEmpty(c.pythonExtension)) return { python: c.pythonExtension.trim(), source: 'python-extension' };
  return { python: c.fallback ?? 'python3', source: 'default' };
}

/** Quote a path for a shell command shown to the user (POSIX style, Windows-friendly when no quote is needed). */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_./:\\@%+=,-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function installCommand(python: string): string {
  return `${shellQuote(python)} -m pip install 'prodture[debug]'`;
}

/** The one-line error shown when `<python> -c "import prodture.adapter"` fails. */
export function notInstalledMessage(python: string, module = 'prodture.adapter'): string {
  return `prodture is not installed in ${python} (import ${module} failed): run \`${installCommand(python)}\` or set prodture.python`;
}

/** The one-line error shown when the interpreter itself cannot be started. */
export function interpreterMissingMessage(python: string): string {
  return `Python interpreter ${python} could not be started: install Python 3.10+ or set prodture.python to an interpreter that has prodture installed`;
}

/** Arguments of the interpreter check. */
export function checkArgs(module: string): string[] {
  return ['-c', `import ${module}`];
}
