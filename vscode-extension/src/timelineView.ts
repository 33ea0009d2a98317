// The "Replay Timeline" tree in the Run and Debug sidebar.
import * as vscode from 'vscode';
import { ReplaySessions, SessionState } from './sessions';
import { DapEffect } from './lib/protocol';
import {
  EffectNode,
  GroupNode,
  TimelineNode,
  childNodes,
  currentIndex,
  effectDescription,
  effectLabel,
  effectState,
  groupLabel,
  groupOf,
} from './lib/timeline';
import { formatDuration } from './webview/format';

export class TimelineView implements vscode.TreeDataProvider<TimelineNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<TimelineNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly view: vscode.TreeView<TimelineNode>;
  private nodes = new Map<string, TimelineNode>(); // stable objects, so reveal() finds them
  private shown: SessionState | undefined;
  private effectsRef: DapEffect[] | undefined;
  private disposables: vscode.Disposable[] = [];

  constructor(private readonly sessions: ReplaySessions) {
    this.view = vscode.window.createTreeView('prodture.timeline', { treeDataProvider: this, showCollapseAll: false });
    this.disposables.push(this.view, this.changed, sessions.onDidChange((st) => this.onSessions(st)));
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
  }

  /** The Jump to Effect command: an effect number, a node of this tree, or asks for a number. */
  async jumpTo(arg?: number | TimelineNode): Promise<void> {
    let seq: number | undefined = typeof arg === 'number' ? arg : arg && arg.kind === 'effect' ? arg.effect.seq : undefined;
    if (seq === undefined) {
      const v = await vscode.window.showInputBox({ prompt: 'Effect number to jump to', validateInput: (s) => (/^\d+$/.test(s) ? undefined : 'a number') });
      if (!v) return;
      seq = Number(v);
    }
    await this.sessions.jumpToEffect(seq);
  }

  refresh(): void {
    const st = this.sessions.active();
    if (st) void this.sessions.load(st, true);
    this.changed.fire(undefined);
  }

  private onSessions(st: SessionState | undefined): void {
    const active = this.sessions.active();
    if (active !== this.shown || active?.effects !== this.effectsRef) {
      this.shown = active;
      this.effectsRef = active?.effects;
      this.nodes.clear();
    }
    this.view.message = active && !active.effects ? 'Loading the recorded effects…' : undefined;
    this.view.description = this.description(active);
    this.changed.fire(undefined);
    if (active && active === st && active.effects && active.position) {
      const i = currentIndex(active.effects, active.position);
      if (i >= 0 && this.view.visible) {
        const node = this.effectNode(i, active.effects);
        void Promise.resolve(this.view.reveal(node, { select: false, focus: false, expand: true })).catch(() => undefined);
      }
    }
  }

  /** Short text beside the view's title: position and outcome (the rows keep all the room). */
  private description(st: SessionState | undefined): string | undefined {
    if (!st || !st.effects) return undefined;
    const parts: string[] = [];
    const pos = st.position;
    if (pos) parts.push(`${pos.effect}/${pos.effectCount} performed`);
    if (st.outcome) {
      const summary = st.outcome.summary ?? '';
      parts.push(/^(Success|Failure)\b/.test(summary) ? summary : `${st.outcome.ok ? 'Success' : 'Failure'}${summary ? `: ${summary}` : ''}`);
    }
    if (!st.complete) parts.push('list truncated');
    return parts.join(' · ') || undefined;
  }

  private effectNode(index: number, effects: DapEffect[]): EffectNode {
    const key = `e${index}`;
    let n = this.nodes.get(key) as EffectNode | undefined;
    if (!n) {
      n = { kind: 'effect', index, effect: effects[index] };
      this.nodes.set(key, n);
    }
    return n;
  }

  private groupNode(g: GroupNode): GroupNode {
    const key = `g${g.start}`;
    let n = this.nodes.get(key) as GroupNode | undefined;
    if (!n) {
      n = g;
      this.nodes.set(key, n);
    }
    return n;
  }

  getChildren(element?: TimelineNode): TimelineNode[] {
    const st = this.sessions.active();
    const effects = st?.effects;
    if (!effects) return [];
    if (element && element.kind === 'effect') return [];
    return childNodes(effects.length, element as GroupNode | undefined, effects).map((n) =>
      n.kind === 'effect' ? this.effectNode(n.index, effects) : this.groupNode(n),
    );
  }

  getParent(element: TimelineNode): TimelineNode | undefined {
    const effects = this.sessions.active()?.effects;
    if (!effects || element.kind === 'group') return undefined;
    const g = groupOf(element.index, effects.length);
    return g ? this.groupNode(g) : undefined;
  }

  getTreeItem(node: TimelineNode): vscode.TreeItem {
    const st = this.sessions.active();
    const effects = st?.effects ?? [];
    if (node.kind === 'group') {
      const pos = st?.position;
      const ci = currentIndex(effects, pos);
      const contains = ci >= node.start && ci < node.end;
      const item = new vscode.TreeItem(groupLabel(node, effects), contains ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed);
      item.id = `group-${node.start}`;
      return item;
    }
    const e = node.effect;
    const state = effectState(e, node.index, st?.position);
    const label = effectLabel(e);
    const item = new vscode.TreeItem(
      state === 'current' ? { label, highlights: [[0, label.length]] } : label,
      vscode.TreeItemCollapsibleState.None,
    );
    item.id = `effect-${e.seq}`;
    const dur = formatDuration(e.durationMs);
    item.description = effectDescription(e) + (dur ? ` · ${dur}` : '');
    item.iconPath =
      state === 'current'
        ? new vscode.ThemeIcon('debug-stackframe', new vscode.ThemeColor('debugIcon.stepOverForeground'))
        : !e.ok
          ? new vscode.ThemeIcon('error', new vscode.ThemeColor('errorForeground'))
          : state === 'done'
            ? new vscode.ThemeIcon('pass', new vscode.ThemeColor('testing.iconPassed'))
            : new vscode.ThemeIcon('circle-outline');
    const where = e.path ? `${e.path}${e.line ? `:${e.line}` : ''}` : '';
    const md = new vscode.MarkdownString();
    md.appendMarkdown(`**#${e.seq} ${e.type}**${state === 'current' ? ' — current position' : ''}\n\n`);
    if (e.request) md.appendCodeblock(String(e.request), 'text');
    md.appendMarkdown(e.ok ? '**result**\n' : '**error (recorded)**\n');
    md.appendCodeblock(String((e.ok ? e.result : e.error) ?? ''), 'text');
    if (dur) md.appendMarkdown(`took ${dur}`);
    if (where) md.appendMarkdown(` · ${where}`);
    item.tooltip = md;
    item.accessibilityInformation = {
      label: `${label}${state === 'current' ? ', current position' : state === 'done' ? ', performed' : ''}${e.ok ? '' : ', failed'}: ${item.description}`,
    };
    item.contextValue = `prodture.effect.${state}${e.ok ? '' : '.failed'}`;
    item.command = { command: 'prodture.jumpToEffect', title: 'Jump to effect', arguments: [e.seq] };
    return item;
  }
}
