// Finding the interpreter (Python extension / setting / python3) and checking prodture is importable.
import * as vscode from 'vscode';
import { execFile } from 'child_process';
import { PythonChoice, checkArgs, choosePython, installCommand, interpreterMissingMessage, notInstalledMessage } from './lib/python';

const PY_EXT_ID = 'ms-python.python';

export class Interpreters implements vscode.Disposable {
  private okCache = new Map<string, number>(); // key python|module -> time of success
  private disposables: vscode.Disposable[] = [];
  private changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private watchingPyExt = false;

  constructor(private readonly log: vscode.OutputChannel) {
    this.disposables.push(
      this.changed,
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('prodture.python')) {
          this.okCache.clear();
          this.changed.fire();
        }
      }),
    );
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
  }

  /** Active environment of the Python extension for a resource, if that extension is installed. */
  private async fromPythonExtension(resource?: vscode.Uri): Promise<string | undefined> {
    if (!vscode.extensions.getExtension(PY_EXT_ID)) return undefined;
    try {
      const { PythonExtension } = await import('@vscode/python-extension');
      const api = await PythonExtension.api();
      if (!this.watchingPyExt) {
        this.watchingPyExt = true;
        this.disposables.push(
          api.environments.onDidChangeActiveEnvironmentPath(() => {
            this.okCache.clear();
            this.changed.fire();
          }),
        );
      }
      const envPath = api.environments.getActiveEnvironmentPath(resource);
      const env = await api.environments.resolveEnvironment(envPath);
      return env?.executable.uri?.fsPath ?? envPath.path;
    } catch (e) {
      this.log.appendLine(`[python] could not ask the Python extension for its environment: ${String(e)}`);
      return undefined;
    }
  }

  async choose(resource?: vscode.Uri, launchPython?: string): Promise<PythonChoice> {
    const setting = vscode.workspace.getConfiguration('prodture', resource).get<string>('python', '');
    const explicit = (launchPython && launchPython.trim()) || (setting && setting.trim());
    const pythonExtension = explicit ? undefined : await this.fromPythonExtension(resource);
    const choice = choosePython({ launchPython, setting, pythonExtension, fallback: 'python3' });
    this.log.appendLine(`[python] using ${choice.python} (from ${choice.source})`);
    return choice;
  }

  /**
   * Run `<python> -c "import <module>"`. Resolves to undefined when fine, else to the one-line
   * error to show (with the fix).
   */
  check(python: string, module: string, cwd?: string): Promise<string | undefined> {
    const key = `${python}|${module}`;
    const t = this.okCache.get(key);
    if (t !== undefined && Date.now() - t < 10 * 60_000) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      execFile(python, checkArgs(module), { cwd, timeout: 30_000, windowsHide: true }, (err, _stdout, stderr) => {
        if (!err) {
          this.okCache.set(key, Date.now());
          resolve(undefined);
          return;
        }
        const code = (err as NodeJS.ErrnoException).code;
        this.log.appendLine(`[python] ${python} -c "import ${module}" failed: ${String(stderr || err.message).trim()}`);
        resolve(code === 'ENOENT' || code === 'EACCES' ? interpreterMissingMessage(python) : notInstalledMessage(python, module));
      });
    });
  }

  /** Show an interpreter error with buttons that apply the fix. */
  async showError(message: string, python: string): Promise<void> {
    const copy = 'Copy install command';
    const settings = 'Set prodture.python';
    const pick = await vscode.window.showErrorMessage(message, copy, settings);
    if (pick === copy) {
      await vscode.env.clipboard.writeText(installCommand(python));
    } else if (pick === settings) {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'prodture.python');
    }
  }
}
