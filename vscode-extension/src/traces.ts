// Which trace an action is about: the command's argument, the active editor tab, or a pick.
import * as vscode from 'vscode';
import { TRACE_EXT, VIEW_TYPE } from './lib/protocol';
import { LaunchContext, isTracePath } from './lib/launch';
import { baseName } from './lib/paths';
import { traceFromArgument } from './lib/traceArg';

/** Path of the trace in the active editor tab (trace viewer or text editor). */
export function activeTracePath(): string | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputCustom && input.viewType === VIEW_TYPE) return input.uri.fsPath;
  if (input instanceof vscode.TabInputText && isTracePath(input.uri.fsPath)) return input.uri.fsPath;
  const doc = vscode.window.activeTextEditor?.document;
  if (doc && isTracePath(doc.uri.fsPath)) return doc.uri.fsPath;
  return undefined;
}

/** What a launch configuration is resolved against. */
export function launchContext(): LaunchContext {
  return {
    activeTrace: activeTracePath(),
    workspaceFolderOf: (p) => vscode.workspace.getWorkspaceFolder(vscode.Uri.file(p))?.uri.fsPath,
    defaultFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
  };
}

/** A trace path from a command argument (path, Uri, lens arguments), the active tab, or a pick. */
export async function traceFor(arg: unknown, action: string): Promise<string | undefined> {
  const given = traceFromArgument(arg) ?? activeTracePath();
  if (given) return given;
  const files = await vscode.workspace.findFiles(`**/*${TRACE_EXT}`, '**/node_modules/**', 500);
  if (files.length === 0) {
    void vscode.window.showInformationMessage(`No ${TRACE_EXT} file in this workspace: record one, or open a trace first.`);
    return undefined;
  }
  files.sort((a, b) => b.fsPath.localeCompare(a.fsPath));
  const pick = await vscode.window.showQuickPick(
    files.map((f) => ({ label: baseName(f.fsPath), description: vscode.workspace.asRelativePath(f), uri: f })),
    { placeHolder: `Trace to ${action}` },
  );
  return pick?.uri.fsPath;
}

/** Open a trace in the trace viewer (reads it only: allowed in Restricted Mode). */
export async function showTrace(arg: unknown): Promise<void> {
  const trace = await traceFor(arg, 'show');
  if (!trace) return;
  await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(trace), VIEW_TYPE);
}
