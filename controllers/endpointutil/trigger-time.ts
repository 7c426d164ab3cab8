// The last-change-trigger-time annotation (upstream TriggerTimeTracker), as a pure step function: the wiring
// keeps one TriggerTimeState per Service between syncs and forgets it when the Service is deleted.
import type { Pod, Service } from '../../api/wire.js';
import { ANNOTATION_TRIGGER_TIME } from './constants.js';
import { podReadyCondition } from './pod.js';

/** What the previous sync of a Service saw. Times are canonical RFC 3339 (nanosecond) UTC strings. */
export interface TriggerTimeState {
  serviceTriggerTime?: string;
  /** By pod name. */
  podTriggerTimes: Map<string, string>;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i;

/** Nanoseconds since the epoch, or undefined for a missing or unreadable time. */
export function timeToNanos(text: string | undefined | null): bigint | undefined {
  if (!text) return undefined;
  const match = RFC3339.exec(text);
  if (!match) return undefined;
  const wholeSeconds = Date.parse(`${match[1]}${match[3].toUpperCase()}`);
  if (Number.isNaN(wholeSeconds)) return undefined;
  const fraction = BigInt((match[2] ?? '').padEnd(9, '0'));
  return BigInt(wholeSeconds) * 1_000_000n + fraction;
}

/** Go's time.Format(time.RFC3339Nano) in UTC: no fractional part when zero, trailing zeros trimmed. */
export function formatRFC3339Nano(nanos: bigint): string {
  const seconds = nanos / 1_000_000_000n - (nanos % 1_000_000_000n < 0n ? 1n : 0n);
  const fraction = nanos - seconds * 1_000_000_000n;
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  const digits = fraction === 0n ? '' : `.${fraction.toString().padStart(9, '0').replace(/0+$/, '')}`;
  return `${base}${digits}Z`;
}

/** Canonical form of an RFC 3339 time string, or undefined if it cannot be read. */
export function canonicalTime(text: string | undefined | null): string | undefined {
  const nanos = timeToNanos(text);
  return nanos === undefined ? undefined : formatRFC3339Nano(nanos);
}

/**
 * Parsed times by their text, for the pods that turned ready in the same second (most of a burst); cleared when
 * full, so it stays small.
 */
class RecentTimes {
  private readonly parsed = new Map<string, { nanos: bigint; canonical: string }>();

  constructor(private readonly capacity: number) {}

  read(text: string | undefined | null): { nanos: bigint; canonical: string } | undefined {
    if (!text) return undefined;
    let time = this.parsed.get(text);
    if (time) return time;
    const nanos = timeToNanos(text);
    if (nanos === undefined) return undefined;
    time = { nanos, canonical: formatRFC3339Nano(nanos) };
    if (this.parsed.size >= this.capacity) this.parsed.clear();
    this.parsed.set(text, time);
    return time;
  }
}

const recentTimes = new RecentTimes(1024);

function isAfter(candidate: bigint, previous: string | undefined): boolean {
  const before = recentTimes.read(previous)?.nanos;
  return before === undefined || candidate > before;
}

/**
 * The trigger time for this sync and the state to keep for the next. The first sync of a Service returns its
 * creationTimestamp; later syncs the earliest pod Ready transition (or Service creation) newer than what the
 * previous sync saw; undefined means "remove the annotation". Only call it for pods matching the selector.
 */
export function computeTriggerTime(
  previous: TriggerTimeState | undefined,
  service: Service,
  pods: readonly Pod[],
): { triggerTime: string | undefined; state: TriggerTimeState } {
  let earliestChange: bigint | undefined;
  const consider = (nanos: bigint) => {
    if (earliestChange === undefined || nanos < earliestChange) earliestChange = nanos;
  };
  const podTriggerTimes = new Map<string, string>();
  for (const pod of pods) {
    const text = podReadyCondition(pod)?.lastTransitionTime;
    const name = pod.metadata?.name ?? '';
    const seen = previous?.podTriggerTimes.get(name);
    // The same text as last time (the API server writes canonical times): unchanged, nothing to parse. A sync
    // reads every pod's time, and parsing them all was a hot spot on large Services (issue 13).
    if (text !== undefined && text === seen) {
      podTriggerTimes.set(name, seen);
      continue;
    }
    const transition = recentTimes.read(text);
    if (transition === undefined) continue;
    podTriggerTimes.set(name, transition.canonical);
    if (isAfter(transition.nanos, seen)) consider(transition.nanos);
  }
  const created = timeToNanos(service.metadata?.creationTimestamp);
  if (created !== undefined && isAfter(created, previous?.serviceTriggerTime)) consider(created);

  const state: TriggerTimeState = { podTriggerTimes };
  if (created !== undefined) state.serviceTriggerTime = formatRFC3339Nano(created);
  if (previous === undefined) {
    return { triggerTime: created === undefined ? undefined : formatRFC3339Nano(created), state };
  }
  return { triggerTime: earliestChange === undefined ? undefined : formatRFC3339Nano(earliestChange), state };
}

/** Sets the trigger-time annotation, or removes it when there is no trigger time. */
export function applyTriggerTime(
  annotations: Record<string, string> | undefined,
  triggerTime: string | undefined,
): Record<string, string> {
  const next = { ...(annotations ?? {}) };
  const canonical = canonicalTime(triggerTime);
  if (canonical !== undefined) next[ANNOTATION_TRIGGER_TIME] = canonical;
  else delete next[ANNOTATION_TRIGGER_TIME];
  return next;
}
