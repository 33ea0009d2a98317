// The Replay timeline model: effects grouped for a tree, labels, where the session is — no VS Code API.
import type { DapEffect, PositionEvent } from './protocol';
import { clip } from '../webview/format';

export type EffectState = 'done' | 'current' | 'pending';

export interface EffectNode {
  kind: 'effect';
  effect: DapEffect;
  index: number;
}

export interface GroupNode {
  kind: 'group';
  start: number; // index in the effects array, inclusive
  end: number; // exclusive
}

export type TimelineNode = EffectNode | GroupNode;

/** Above this many effects the tree shows groups of `groupSize` instead of one flat list. */
export const FLAT_LIMIT = 1000;
export const GROUP_SIZE = 1000;

export function effectLabel(e: DapEffect): string {
  return `#${e.seq} ${e.type}`;
}

export function effectDescription(e: DapEffect): string {
  const outcome = e.ok ? clip(e.result, 60) : `✗ ${clip(e.error, 60)}`;
  const req = clip(e.request, 50);
  return req ? `${req} → ${outcome}` : outcome;
}

/**
 * State of an effect relative to the current position. `position.effect` effects have been
 * performed; the next one (the one the paused line is about to yield, or the next to come) is
 * "current".
 */
export function effectState(e: DapEffect, index: number, pos: PositionEvent | undefined): EffectState {
  if (!pos) return 'pending';
  if (pos.nextEffect !== undefined && pos.nextEffect !== null) {
    if (e.seq === pos.nextEffect) return 'current';
    return e.seq < pos.nextEffect ? 'done' : 'pending';
  }
  // no next effect: everything performed so far is done
  return index < pos.effect ? 'done' : 'pending';
}

/** Index (in `effects`) of the effect to reveal for a position, or -1. */
export function currentIndex(effects: DapEffect[], pos: PositionEvent | undefined): number {
  if (!pos || effects.length === 0) return -1;
  if (pos.nextEffect !== undefined && pos.nextEffect !== null) {
    const i = effects.findIndex((e) => e.seq === pos.nextEffect);
    if (i >= 0) return i;
  }
  return Math.min(effects.length, Math.max(0, pos.effect)) - 1;
}

export function childNodes(count: number, parent: GroupNode | undefined, effects?: DapEffect[]): TimelineNode[] {
  if (!parent) {
    if (count <= FLAT_LIMIT) return effectRange(0, count, effects);
    const groups: TimelineNode[] = [];
    for (let s = 0; s < count; s += GROUP_SIZE) groups.push({ kind: 'group', start: s, end: Math.min(count, s + GROUP_SIZE) });
    return groups;
  }
  return effectRange(parent.start, parent.end, effects);
}

function effectRange(start: number, end: number, effects?: DapEffect[]): TimelineNode[] {
  const out: TimelineNode[] = [];
  for (let i = start; i < end; i++) out.push({ kind: 'effect', index: i, effect: effects ? effects[i] : ({} as DapEffect) });
  return out;
}

export function groupOf(index: number, count: number): GroupNode | undefined {
  if (count <= FLAT_LIMIT) return undefined;
  const start = Math.floor(index / GROUP_SIZE) * GROUP_SIZE;
  return { kind: 'group', start, end: Math.min(count, start + GROUP_SIZE) };
}

export function groupLabel(g: GroupNode, effects: DapEffect[]): string {
  const a = effects[g.start];
  const b = effects[g.end - 1];
  return `Effects #${a ? a.seq : g.start} – #${b ? b.seq : g.end - 1}`;
}

/** Status bar text for a position. */
export function statusText(pos: PositionEvent | undefined): string {
  if (!pos) return '$(history) prodture';
  const next = pos.nextEffect === null || pos.nextEffect === undefined ? 'end' : `next #${pos.nextEffect}`;
  return `$(history) effect ${pos.effect}/${pos.effectCount} · ${next} · step ${pos.step}`;
}

/** Accessible description of a position (screen readers; also what the end-to-end test reads). */
export function statusAccessibleText(pos: PositionEvent | undefined): string {
  if (!pos) return 'Replay position: not started';
  const next = pos.nextEffect === null || pos.nextEffect === undefined ? 'no effect left' : `next effect ${pos.nextEffect}`;
  const where = pos.path ? `, ${pos.path.split(/[\\/]/).pop()} line ${pos.line ?? '?'}` : '';
  return `Replay position: effect ${pos.effect} of ${pos.effectCount} performed, ${next}, step ${pos.step}${where}`;
}
