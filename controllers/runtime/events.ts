// Core Events on the objects a decision concerns, correlated like client-go's recorder:
// - identical events (same object, type, reason, message) bump `count` on the existing Event;
// - more than 10 distinct messages for one (object, type, reason) within 10 minutes collapse into one
//   "(combined from similar events): …" Event;
// - a token bucket per object (burst 25, one more every 5 minutes) drops floods;
// - a bumped Event that is gone (the API server's event TTL, an hour by default) is created again.
import { Events } from '../../api/resources.js';
import { isNotFound, type KubeClient } from './client.js';
import type { Logger } from './log.js';
import type { KubeEvent, KubeObject } from '../../api/wire.js';

export type EventType = 'Normal' | 'Warning';

export interface InvolvedObject {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  resourceVersion?: string;
}

export interface EventDraft {
  involved: InvolvedObject;
  type: EventType;
  reason: string;
  message: string;
}

export type Correlation =
  | { action: 'drop' }
  | { action: 'create'; message: string; key: string }
  | { action: 'bump'; key: string; count: number; message: string };

const AGGREGATE_MAX_EVENTS = 10;
const AGGREGATE_WINDOW_MS = 600_000;
const SPAM_BURST = 25;
const SPAM_REFILL_MS = 300_000;
const CACHE_LIMIT = 4096;

/** The pure correlation of client-go's EventCorrelator, with an injectable clock. */
export class EventCorrelator {
  private readonly spam = new Map<string, { tokens: number; at: number }>();
  private readonly aggregates = new Map<string, { messages: Set<string>; firstAt: number }>();
  private readonly seen = new Map<string, { count: number }>();

  correlate(draft: EventDraft, now: number): Correlation {
    const o = draft.involved;
    const objectKey = [o.kind, o.namespace, o.name, o.uid, o.apiVersion].join('\u0000');
    if (!this.takeToken(objectKey, now)) return { action: 'drop' };

    const aggregateKey = [objectKey, draft.type, draft.reason].join('\u0000');
    let agg = this.aggregates.get(aggregateKey);
    if (!agg || now - agg.firstAt > AGGREGATE_WINDOW_MS) {
      agg = { messages: new Set(), firstAt: now };
      remember(this.aggregates, aggregateKey, agg);
    }
    agg.messages.add(draft.message);
    const combined = agg.messages.size >= AGGREGATE_MAX_EVENTS;
    const message = combined ? `(combined from similar events): ${draft.message}` : draft.message;
    const key = combined ? aggregateKey : [aggregateKey, draft.message].join('\u0000');

    const previous = this.seen.get(key);
    if (previous) {
      previous.count += 1;
      return { action: 'bump', key, count: previous.count, message };
    }
    remember(this.seen, key, { count: 1 });
    return { action: 'create', message, key };
  }

  private takeToken(key: string, now: number): boolean {
    const bucket = this.spam.get(key) ?? { tokens: SPAM_BURST, at: now };
    bucket.tokens = Math.min(SPAM_BURST, bucket.tokens + (now - bucket.at) / SPAM_REFILL_MS);
    bucket.at = now;
    remember(this.spam, key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}

/** A bounded LRU insert: the oldest entry goes when the map is full. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > CACHE_LIMIT) map.delete(map.keys().next().value as string);
}

export function involvedObjectOf(obj: KubeObject, fallback: { apiVersion: string; kind: string }): InvolvedObject {
  return {
    apiVersion: obj.apiVersion ?? fallback.apiVersion,
    kind: obj.kind ?? fallback.kind,
    namespace: obj.metadata?.namespace,
    name: obj.metadata?.name,
    uid: obj.metadata?.uid,
    resourceVersion: obj.metadata?.resourceVersion,
  };
}

export interface EventSink {
  event(obj: InvolvedObject, type: EventType, reason: string, message: string): void;
}

/** Writes correlated Events through the API; failures are logged, never thrown at the caller. */
export class EventRecorder implements EventSink {
  private readonly correlator = new EventCorrelator();
  private readonly names = new Map<string, { name: string; namespace: string }>();
  private pending = 0;
  /** The last write per correlation key: writes of one key run in order, so a count never goes back. */
  private readonly lastWrite = new Map<string, Promise<void>>();
  /** Emitted Events, for metrics: reason → count. */
  readonly emitted = new Map<string, number>();

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly host: string,
    private readonly log?: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  event(involved: InvolvedObject, type: EventType, reason: string, message: string): void {
    const now = this.now();
    const c = this.correlator.correlate({ involved, type, reason, message }, now);
    if (c.action === 'drop') return;
    this.emitted.set(reason, (this.emitted.get(reason) ?? 0) + 1);
    if (this.pending > 1000) return; // the API is not keeping up; events are best-effort
    this.pending += 1;
    const write = (this.lastWrite.get(c.key) ?? Promise.resolve()).then(() => this.write(involved, type, reason, c, now));
    this.lastWrite.set(c.key, write);
    void write.finally(() => {
      this.pending -= 1;
      if (this.lastWrite.get(c.key) === write) this.lastWrite.delete(c.key);
    });
  }

  private async write(involved: InvolvedObject, type: EventType, reason: string, c: Exclude<Correlation, { action: 'drop' }>, now: number): Promise<void> {
    const timestamp = new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
    const namespace = involved.namespace || 'default';
    try {
      const existing = this.names.get(c.key);
      if (c.action === 'bump' && existing) {
        try {
          await this.client.patch(Events, existing.name, { count: c.count, lastTimestamp: timestamp, message: c.message }, 'merge', { namespace: existing.namespace });
          return;
        } catch (err) {
          if (!isNotFound(err)) throw err;
          // Expired or deleted: write it anew with the count so far, as client-go does.
        }
      }
      const name = `${involved.name ?? 'unknown'}.${(BigInt(now) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6))).toString(16)}`;
      const event: KubeEvent = {
        metadata: { name, namespace },
        involvedObject: involved,
        reason,
        message: c.message,
        type,
        source: { component: this.component, host: this.host },
        firstTimestamp: timestamp,
        lastTimestamp: timestamp,
        count: c.action === 'bump' ? c.count : 1,
        reportingComponent: this.component,
        reportingInstance: this.host,
      };
      await this.client.create(Events, event);
      this.names.set(c.key, { name, namespace });
      if (this.names.size > CACHE_LIMIT) this.names.delete(this.names.keys().next().value as string);
    } catch (err) {
      this.log?.warn('could not write event', { reason, object: `${involved.namespace ?? ''}/${involved.name ?? ''}`, error: String(err) });
    }
  }
}
