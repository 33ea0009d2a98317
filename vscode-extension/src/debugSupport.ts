// The `prodture` debugger: launch configurations (F5, launch.json, the Debug button and lens) and
// the adapter process (python -m prodture.adapter). Debugging replays the handler, which runs the
// folder's code: every way in asks the trust gate first.
import * as vscode from 'vscode';
import * as fs from 'fs';
import { Interpreters } from './interpreter';
import { ReplaySessions } from './sessions';
import { WorkspaceTrustGate } from './trust';
import { traceFor, launchContext } from './traces';
import { DEBUG_TYPE, TRACE_EXT } from './lib/protocol';
import { LaunchConfig, configForTrace, resolveAfterSubstitution, resolveBeforeSubstitution } from './lib/launch';

export class DebugSupport implements vscode.DebugConfigurationProvider, vscode.DebugAdapterDescriptorFactory {
  constructor(
    private readonly interpreters: Interpreters,
    private readonly sessions: ReplaySessions,
    private readonly trust: WorkspaceTrustGate,
    private readonly log: vscode.OutputChannel,
  ) {}

  /** Registers the providers and the adapter factory. */
  register(): vscode.Disposable {
    return vscode.Disposable.from(
      vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, this),
      vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, { provideDebugConfigurations: (f) => this.provideDebugConfigurations(f) }, vscode.DebugConfigurationProviderTriggerKind.Dynamic),
      vscode.debug.registerDebugAdapterDescriptorFactory(DEBUG_TYPE, this),
    );
  }

  /** The Debug command, button and lens. Debug on a trace already being debugged starts it afresh. */
  async debugTrace(arg: unknown): Promise<boolean> {
    if (!this.trust.allows('debug')) return false;
    const trace = await traceFor(arg, 'debug');
    if (!trace) return false;
    await this.sessions.stopTrace(trace);
    const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(trace));
    return vscode.debug.startDebugging(folder, configForTrace(trace, folder?.uri.fsPath) as vscode.DebugConfiguration);
  }

  resolveDebugConfiguration(_folder: vscode.WorkspaceFolder | undefined, config: vscode.DebugConfiguration): vscode.DebugConfiguration | undefined {
    if (!this.trust.allows('debug')) return undefined; // F5 / launch.json in Restricted Mode
    const r = resolveBeforeSubstitution(config as LaunchConfig, launchContext());
    if (!r.ok) {
      void vscode.window.showErrorMessage(r.error);
      return undefined;
    }
    return r.config as vscode.DebugConfiguration;
  }

  async resolveDebugConfigurationWithSubstitutedVariables(folder: vscode.WorkspaceFolder | undefined, config: vscode.DebugConfiguration): Promise<vscode.DebugConfiguration | undefined> {
    if (!this.trust.allows('debug')) return undefined;
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

  createDebugAdapterDescriptor(session: vscode.DebugSession): vscode.DebugAdapterDescriptor | undefined {
    // VS Code does not debug in Restricted Mode; should a session get here anyway, it does not start
    if (!this.trust.allows('debug')) return undefined;
    const python = String(session.configuration.python || 'python3');
    const cwd = session.configuration.cwd ? String(session.configuration.cwd) : undefined;
    this.log.appendLine(`[dap] starting ${python} -m prodture.adapter for ${String(session.configuration.trace)}`);
    return new vscode.DebugAdapterExecutable(python, ['-m', 'prodture.adapter'], {
      cwd,
      env: { PYTHONUNBUFFERED: '1', PYDEVD_DISABLE_FILE_VALIDATION: '1' },
    });
  }
}
