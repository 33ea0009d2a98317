// The trust gate: every action that runs the folder's code (Replay, Debug, the language server's
// replay on save) asks it first. In Restricted Mode it says in one line why the action is off and
// offers "Manage Workspace Trust"; `onDidGrantWorkspaceTrust` turns the actions on without a reload.
import * as vscode from 'vscode';
import { GatedAction, MANAGE_TRUST_COMMAND, MANAGE_TRUST_LABEL, untrustedInterpreterProblem, untrustedMessage } from './lib/trust';

export class WorkspaceTrustGate implements vscode.Disposable {
  private readonly granted = new vscode.EventEmitter<void>();
  /** fires once the user trusts the folder */
  readonly onDidGrant = this.granted.event;
  private readonly disposables: vscode.Disposable[] = [this.granted];

  constructor(private readonly log: vscode.OutputChannel) {
    this.disposables.push(
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        this.log.appendLine('[trust] the folder is trusted now: Replay, Debug and replay on save are on');
        this.granted.fire();
      }),
    );
    if (!this.trusted) this.log.appendLine('[trust] Restricted Mode: traces are shown; Replay, Debug and replay on save are off');
  }

  get trusted(): boolean {
    return vscode.workspace.isTrusted;
  }

  /**
   * True when `action` may run the folder's code. Otherwise shows the one-line reason with a
   * button that opens VS Code's Workspace Trust editor, and returns false.
   */
  allows(action: GatedAction): boolean {
    if (this.trusted) return true;
    const message = untrustedMessage(action);
    this.log.appendLine(`[trust] ${message}`);
    void vscode.window.showWarningMessage(`prodture: ${message}`, MANAGE_TRUST_LABEL).then((pick) => {
      if (pick === MANAGE_TRUST_LABEL) void this.manage();
    });
    return false;
  }

  /** The refusal to start `python` (an interpreter inside the untrusted folder), or undefined. */
  interpreterProblem(python: string): string | undefined {
    const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
    return untrustedInterpreterProblem(python, this.trusted, folders);
  }

  manage(): Thenable<unknown> {
    return vscode.commands.executeCommand(MANAGE_TRUST_COMMAND);
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
  }
}
