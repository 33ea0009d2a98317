// The Replay command: `python -m prodture.cli replay TRACE` in the trace's folder, its output in
// the "Prodture Replay" channel and its verdict as a notification. A replay imports the handler's
// modules — the folder's code — so it asks the trust gate first.
import * as vscode from 'vscode';
import { spawn } from 'child_process';
import { Interpreters } from './interpreter';
import { WorkspaceTrustGate } from './trust';
import { traceFor } from './traces';
import { baseName } from './lib/paths';
import { OutputTail, replayArgs, replayNotice } from './lib/replay';

export class ReplayRunner implements vscode.Disposable {
  private channel: vscode.OutputChannel | undefined;

  constructor(
    private readonly interpreters: Interpreters,
    private readonly trust: WorkspaceTrustGate,
  ) {}

  /** Replays a trace; resolves to the CLI's exit code (undefined when it did not run). */
  async replayTrace(arg: unknown): Promise<number | undefined> {
    if (!this.trust.allows('replay')) return undefined;
    const trace = await traceFor(arg, 'replay');
    if (!trace) return undefined;
    const cwd = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(trace))?.uri.fsPath;
    const { python } = await this.interpreters.choose(vscode.Uri.file(trace));
    const problem = await this.interpreters.check(python, 'prodture.cli', cwd);
    if (problem) {
      void this.interpreters.showError(problem, python);
      return undefined;
    }
    this.channel ??= vscode.window.createOutputChannel('Prodture Replay');
    const out = this.channel;
    out.clear();
    out.show(true);
    const args = replayArgs(trace);
    out.appendLine(`$ ${python} ${args.join(' ')}`);
    return new Promise((resolve) => {
      const child = spawn(python, args, { cwd, env: { ...process.env, PYTHONUNBUFFERED: '1' } });
      const tail = new OutputTail();
      child.stdout.on('data', (d: Buffer) => {
        out.append(d.toString());
        tail.stdout(d.toString());
      });
      child.stderr.on('data', (d: Buffer) => {
        out.append(d.toString());
        tail.stderr(d.toString());
      });
      child.on('error', (e) => {
        out.appendLine(`prodture: could not start ${python}: ${e.message}`);
        resolve(undefined);
      });
      child.on('close', (code) => {
        out.appendLine(`[exit ${code}]`);
        const notice = replayNotice(baseName(trace), code, tail.lastOut, tail.firstErr);
        const show = { info: vscode.window.showInformationMessage, warning: vscode.window.showWarningMessage, error: vscode.window.showErrorMessage }[notice.level];
        void show(notice.text);
        resolve(code ?? undefined);
      });
    });
  }

  dispose(): void {
    this.channel?.dispose();
    this.channel = undefined;
  }
}
