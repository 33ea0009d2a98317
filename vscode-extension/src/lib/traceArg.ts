// The trace a command was invoked on — no VS Code API here.

/**
 * The trace path in a command argument: a path, a `vscode.Uri` (anything with a string
 * `fsPath`), or the argument list of a code lens (`[latestPath, ...olderPaths]`: the first).
 */
export function traceFromArgument(arg: unknown): string | undefined {
  if (typeof arg === 'string') return arg || undefined;
  if (Array.isArray(arg)) return typeof arg[0] === 'string' && arg[0] ? arg[0] : undefined;
  if (arg && typeof arg === 'object' && 'fsPath' in arg) {
    const p = (arg as { fsPath: unknown }).fsPath;
    return typeof p === 'string' && p ? p : undefined;
  }
  return undefined;
}
