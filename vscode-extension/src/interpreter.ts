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
  async check(python: string, module: string, cwd?: string): Promise<string | undefined> {
    return (await this.probe(python, module, cwd))?.message;
  }

  /** Like `check`, telling a missing interpreter from one that lacks prodture. */
  probe(python: string, module: string, cwd?: string): Promise<{ kind: 'not-installed' | 'not-found'; message: string } | undefined> {
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
        resolve(
          code === 'ENOENT' || code === 'EACCES'
            ? { kind: 'not-found', message: interpreterMissingMessage(python) }
            : { kind: 'not-installed', message: notInstalledMessage(python, module) },
        );
      });
    });
  }

  /**
   * "Choose another interpreter…": the Python extension's picker when it is installed (and no
   * prodture.python overrides it), else interpreters found nearby, a path typed in, or a file
   * picked. The choice goes into the user's prodture.python; `onDidChange` fires either way.
   */
  async pickAnother(resource?: vscode.Uri): Promise<void> {
    const setting = vscode.workspace.getConfiguration('prodture', resource).get<string>('python', '');
    type Item = vscode.QuickPickItem & { python?: string; action?: 'type' | 'browse' | 'python-extension' };
    const items: Item[] = [];
    if (vscode.extensions.getExtension(PY_EXT_ID)) {
      items.push({ label: '$(symbol-misc) Use the Python extension\'s interpreter picker', detail: 'Clears prodture.python so that the Python extension\'s choice applies', action: 'python-extension' });
    }
    const seen = new Set<string>();
    for (const python of await this.nearbyInterpreters()) {
      if (seen.has(python)) continue;
      seen.add(python);
      items.push({ label: python, description: python === setting ? 'current' : undefined, python });
    }
    items.push({ label: '$(edit) Enter interpreter path…', action: 'type' }, { label: '$(folder-opened) Find interpreter…', action: 'browse' });
    const pick = await vscode.window.showQuickPick(items, { title: 'Interpreter for prodture (prodture.python)', placeHolder: 'The interpreter that runs the language server, the debugger and the CLI' });
    if (!pick) return;
    let python = pick.python;
    if (pick.action === 'python-extension') {
      await vscode.workspace.getConfiguration('prodture').update('python', undefined, vscode.ConfigurationTarget.Global);
      await vscode.commands.executeCommand('python.setInterpreter');
      return;
    }
    if (pick.action === 'type') {
      python = await vscode.window.showInputBox({ title: 'Interpreter for prodture', prompt: 'Path of a Python 3.10+ interpreter', value: setting || undefined, ignoreFocusOut: true });
    } else if (pick.action === 'browse') {
      const uris = await vscode.window.showOpenDialog({ canSelectMany: false, openLabel: 'Use this interpreter', title: 'Python interpreter for prodture' });
      python = uris?.[0]?.fsPath;
    }
    if (!python || !python.trim()) return;
    await vscode.workspace.getConfiguration('prodture').update('python', python.trim(), vscode.ConfigurationTarget.Global);
    this.log.appendLine(`[python] prodture.python (user settings) = ${python.trim()}`);
  }

  /** The virtual environments of the workspace folders and python3 on PATH. */
  private async nearbyInterpreters(): Promise<string[]> {
    const found: string[] = [];
    for (const f of vscode.workspace.workspaceFolders ?? []) {
      for (const rel of ['.venv/bin/python', 'venv/bin/python', '.venv/Scripts/python.exe', 'venv/Scripts/python.exe']) {
        const uri = vscode.Uri.joinPath(f.uri, rel);
        try {
          await vscode.workspace.fs.stat(uri);
          found.push(uri.fsPath);
        } catch {
          /* not there */
        }
      }
    }
    found.push('python3');
    return found;
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
