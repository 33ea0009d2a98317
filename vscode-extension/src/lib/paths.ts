// File-path helpers shared by the trace viewer, the language client and launch configurations —
// no VS Code API, no Node `path` (paths may come from Windows or POSIX machines alike).

export function baseName(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}

export function dirName(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i > 0 ? p.slice(0, i) : i === 0 ? p.slice(0, 1) : '.';
}

/** `p` is `folder` or lies under it (same separators; a trailing separator on `folder` is fine). */
export function isInside(p: string, folder: string): boolean {
  const f = folder.replace(/[\\/]+$/, '');
  if (!f) return false;
  return p === f || p.startsWith(f + '/') || p.startsWith(f + '\\');
}
