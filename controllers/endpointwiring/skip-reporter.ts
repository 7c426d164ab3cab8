// Tells users about input a reconciler left out (SkippedItem), without flooding: a log line per item and, for
// problems only the object's owner can fix, a Warning Event on the Service or Endpoints. A key is reported again
// only when what is skipped changes, so a periodic or retried sync of unchanged input stays silent.
import type { EventSink, InvolvedObject } from '../runtime/events.js';
import type { LogLevel, Logger } from '../runtime/log.js';
import type { SkipCode, SkippedItem } from '../endpointutil/report.js';

interface SkipPolicy {
  level: LogLevel;
  /** Reason of the Warning Event that also reports it. */
  event?: string;
}

/** How each skip is reported: routine cases (a pod not started yet) at debug, config mistakes also as an Event. */
const POLICIES: Record<SkipCode, SkipPolicy> = {
  PodNoIP: { level: 'debug' },
  PodNoIPOfFamily: { level: 'debug' },
  PodInvalidIP: { level: 'warn' },
  PodNodeNotFound: { level: 'warn' }, // the sync also fails with FailedToUpdateEndpointSlices, as upstream
  PodPortNotFound: { level: 'info' },
  PodOtherNamespace: { level: 'warn' },
  ServicePortInvalid: { level: 'warn', event: 'SkippedServicePort' },
  ServicePortCollision: { level: 'warn', event: 'SkippedServicePort' },
  SliceNotOurs: { level: 'warn' },
  SliceUnnamed: { level: 'warn' },
  SliceLabelReserved: { level: 'info' },
  AddressInvalidIP: { level: 'info' }, // the mirroring reconciler emits InvalidIPAddress itself
  AddressOverCapacity: { level: 'info' }, // … and TooManyAddressesToMirror
  EndpointsLeaderElection: { level: 'debug' },
};

const MAX_ITEMS_PER_EVENT = 5;

export class SkipReporter {
  private readonly reported = new Map<string, string>();

  constructor(
    private readonly log: Logger,
    private readonly events: EventSink,
  ) {}

  report(key: string, involved: InvolvedObject, skipped: readonly SkippedItem[]): void {
    const signature = JSON.stringify(skipped.map((item) => [item.code, item.kind, item.name, item.reason]).sort());
    if ((this.reported.get(key) ?? '[]') === signature) return;
    if (skipped.length === 0) this.reported.delete(key);
    else this.reported.set(key, signature);

    const byEvent = new Map<string, SkippedItem[]>();
    for (const item of skipped) {
      const policy = POLICIES[item.code];
      this.log[policy.level]('skipped input', { key, kind: item.kind, name: item.name, code: item.code, reason: item.reason });
      if (policy.event) byEvent.set(policy.event, [...(byEvent.get(policy.event) ?? []), item]);
    }
    for (const [reason, items] of byEvent) {
      const shown = items.slice(0, MAX_ITEMS_PER_EVENT).map((item) => `${item.kind} ${item.name}: ${item.reason}`);
      const more = items.length > MAX_ITEMS_PER_EVENT ? ` (and ${items.length - MAX_ITEMS_PER_EVENT} more)` : '';
      this.events.event(involved, 'Warning', reason, `Skipped ${shown.join('; ')}${more}`);
    }
  }

  forget(key: string): void {
    this.reported.delete(key);
  }
}
