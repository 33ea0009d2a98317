// The Replay command's view of `python -m prodture.cli replay TRACE`: its command line and what
// its exit means for the user — no VS Code API here.

export function replayArgs(trace: string): string[] {
  return ['-m', 'prodture.cli', 'replay', trace];
}

export interface ReplayNotice {
  level: 'info' | 'warning' | 'error';
  text: string;
}

/**
 * The notification for a finished replay: 0 reproduced, 1 diverges (the CLI's exit codes), else
 * it could not run. `lastOut` is the CLI's last stdout line, `firstErr` its first stderr line.
 */
export function replayNotice(traceName: string, code: number | null, lastOut: string, firstErr: string): ReplayNotice {
  if (code === 0) return { level: 'info', text: `Replay of ${traceName} reproduced the recording${lastOut ? `: ${lastOut}` : '.'}` };
  if (code === 1) return { level: 'warning', text: `Replay of ${traceName} diverges from the recording${lastOut ? `: ${lastOut}` : ''} (see "Prodture Replay").` };
  return { level: 'error', text: firstErr || `Replay of ${traceName} failed with exit code ${code} (see "Prodture Replay").` };
}

/** Keeps the last non-empty stdout line and the first stderr line of a streaming process. */
export class OutputTail {
  lastOut = '';
  firstErr = '';
  private pendingOut = '';

  stdout(chunk: string): void {
    this.pendingOut += chunk;
    const lines = this.pendingOut.split('\n');
    this.pendingOut = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) this.lastOut = l.trim();
    if (this.pendingOut.trim()) this.lastOut = this.pendingOut.trim();
  }

  stderr(chunk: string): void {
    if (!this.firstErr) this.firstErr = chunk.split('\n')[0];
  }
}
