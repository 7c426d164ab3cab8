// Leader election on coordination.k8s.io/v1 Leases, with client-go's rules:
// - a candidate takes the lease when it is free, held by itself, or not renewed for leaseDuration as
//   observed on the candidate's own clock (never trusting another machine's renewTime);
// - every write carries the resourceVersion it read, so two candidates can never both win a round;
// - the leader renews every retryPeriod and steps down renewDeadline after the START of its last successful
//   renewal (a RenewalFence), aborting whatever renewal is still in flight: followers wait leaseDuration from
//   when they saw that renewal, so the leader has stopped before any of them can take over;
// - on shutdown it releases the lease so a successor need not wait out the duration.
import { isAlreadyExists, isConflict, isNotFound, runFenced, type KubeClient } from './client.js';
import { sleep } from './backoff.js';
import type { Logger } from './log.js';
import { RenewalFence } from './renewal-fence.js';
import { telemetry } from './telemetry.js';
import { Leases } from '../../api/resources.js';
import type { Lease } from '../../api/wire.js';

export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

/** What the candidate last saw of the lease and when, on its own clock. */
export interface Observation {
  record: LeaseRecord;
  observedAtMs: number;
}

export type Decision =
  | { action: 'wait'; holder: string }
  | { action: 'renew'; record: LeaseRecord }
  | { action: 'acquire'; record: LeaseRecord };

/**
 * The pure decision of one acquire-or-renew round: given the lease as read now and the previous
 * observation, whether to wait, renew our hold, or take the lease over.
 */
export function decide(identity: string, current: LeaseRecord, previous: Observation | undefined, nowMs: number, leaseDurationSeconds: number): Decision {
  const now = microTime(nowMs);
  const holder = current.holderIdentity ?? '';
  if (holder === identity) {
    return { action: 'renew', record: { ...current, renewTime: now, leaseDurationSeconds } };
  }
  if (holder !== '') {
    // The lease's time is the moment WE first saw its current content; an unchanged record older than
    // its duration has expired.
    const unchanged = previous && sameRecord(previous.record, current);
    const seenSince = unchanged ? previous.observedAtMs : nowMs;
    const durationMs = (current.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (seenSince + durationMs > nowMs) return { action: 'wait', holder };
  }
  return {
    action: 'acquire',
    record: {
      holderIdentity: identity,
      leaseDurationSeconds,
      acquireTime: now,
      renewTime: now,
      // A new lease starts at 0; every change of holder (including after a release) counts one.
      leaseTransitions: current.holderIdentity === undefined && current.leaseTransitions === undefined ? 0 : (current.leaseTransitions ?? 0) + 1,
    },
  };
}

/** A Lease MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return a.holderIdentity === b.holderIdentity && a.renewTime === b.renewTime && a.acquireTime === b.acquireTime && a.leaseTransitions === b.leaseTransitions;
}

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log?: Logger;
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  onStoppedLeading?(): void;
  onNewLeader?(identity: string): void;
  now?: () => number;
}

/** client-go's HealthzAdaptor tolerance as kube-controller-manager sets it: a leader this late past its lease is wedged. */
export const LEADER_HEALTHZ_TOLERANCE_MS = 20_000;

export class LeaderElector {
  private observed: Observation | undefined;
  private lease: Lease | undefined;
  private leading = false;
  private lastLeader = '';
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly now: () => number;
  /** The start of our last successful acquire or renew, on our clock. */
  private lastRenewStart = Number.NEGATIVE_INFINITY;
  /** Whether the current term ended by losing the lease (a graceful stop lets the leader's work drain). */
  private lostLease = false;

  constructor(private readonly options: LeaderElectionOptions) {
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.now = options.now ?? Date.now;
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryPeriodMs)) {
      throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod');
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Whether leader-only work may act at this instant: we lead, have not lost the lease, and our last renewal
   * started less than the renew deadline ago. Read from the clock, not from the fence's timer, which a process
   * waking from a freeze runs only after the I/O that arrived meanwhile (see runFenced).
   */
  mayAct(): boolean {
    return this.leading && !this.lostLease && this.now() < this.lastRenewStart + this.renewDeadlineMs;
  }

  /**
   * client-go's leader-election health check: false when we believe we lead but have not renewed for the lease
   * duration plus `toleranceMs`. The fence steps a leader down long before that, so failing means the elector is
   * wedged (its loop no longer runs) and the process must be restarted.
   */
  healthy(toleranceMs = LEADER_HEALTHZ_TOLERANCE_MS): boolean {
    return !this.leading || this.now() - this.lastRenewStart <= this.leaseDurationMs + toleranceMs;
  }

  /**
   * Campaigns until `signal` aborts: acquire, lead (calling onStartedLeading with a signal that aborts
   * when leadership is lost), and release on shutdown. Returns when leadership ends or `signal` aborts; after a
   * loss it returns at once, without waiting for the leader's work to finish (the caller exits).
   */
  async run(signal: AbortSignal): Promise<void> {
    // client-go's name and meaning, so dashboards and "no leader" alerts written for kube-controller-manager fit.
    const status = telemetry().meter.createObservableGauge('leader_election_master_status', {
      description: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
    });
    const report = (r: { observe: (value: number, attributes: { name: string }) => void }) => r.observe(this.leading ? 1 : 0, { name: this.options.name });
    status.addCallback(report);
    try {
      await this.campaignAndLead(signal);
    } finally {
      status.removeCallback(report);
    }
  }

  private async campaignAndLead(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && !(await this.tryAcquire(signal))) {
      await sleep(jittered(this.retryPeriodMs), signal);
    }
    if (signal.aborted) return;
    this.leading = true;
    this.lostLease = false;
    const leadership = new AbortController();
    const stepDown = (why: string) => {
      if (leadership.signal.aborted) return;
      this.lostLease = true;
      this.options.log?.warn('lost leadership', { identity: this.options.identity, holder: this.lastLeader, why });
      leadership.abort();
    };
    const fence = new RenewalFence(this.renewDeadlineMs, (live) => live || stepDown('not renewed within the renew deadline'), this.now);
    fence.renewed(this.lastRenewStart);
    const stopLeading = () => leadership.abort();
    signal.addEventListener('abort', stopLeading, { once: true });
    this.options.log?.info('became leader', { lease: `${this.options.namespace}/${this.options.name}`, identity: this.options.identity });
    const work = Promise.resolve(this.options.onStartedLeading(leadership.signal)).catch((err) =>
      this.options.log?.error('leader work failed', { error: String(err) }),
    );
    while (!leadership.signal.aborted) {
      await sleep(this.retryPeriodMs, leadership.signal);
      if (leadership.signal.aborted) break;
      // The attempt shares the leadership signal: the fence aborts its requests when the deadline passes. A process
      // frozen across the deadline handles the answer to a GET sent before the freeze ahead of that timer, so every
      // request of the attempt is also fenced on the clock.
      if (await runFenced(() => this.mayAct(), () => this.tryAcquireOrRenew(leadership.signal))) fence.renewed(this.lastRenewStart);
      else if (this.lastLeader && this.lastLeader !== this.options.identity) stepDown('another candidate holds the lease');
    }
    fence.stop();
    signal.removeEventListener('abort', stopLeading);
    if (signal.aborted) {
      // A graceful stop: release only once our work has stopped writing, so the successor never overlaps it.
      await work;
      await this.release();
    }
    this.leading = false;
    this.options.onStoppedLeading?.();
  }

  /** One round as a candidate, bounded by the renew deadline (the fence starts from the round's start anyway). */
  private async tryAcquire(signal: AbortSignal): Promise<boolean> {
    // Not AbortSignal.any: on Node 20 every call leaves a little behind on the long-lived `signal`.
    const attempt = new AbortController();
    const abort = () => attempt.abort();
    const timer = setTimeout(abort, this.renewDeadlineMs);
    signal.addEventListener('abort', abort, { once: true });
    try {
      return await this.tryAcquireOrRenew(attempt.signal);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
    }
  }

  /** One round, bounded by `signal`; true when we hold the lease afterwards. */
  private async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const { client, namespace, name, identity } = this.options;
    const durationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    const started = this.now();
    const bounded = { signal, unthrottled: true };
    try {
      const current = await client.getOrUndefined<Lease>(Leases, name, namespace, bounded);
      const now = this.now();
      if (!current) {
        const decision = decide(identity, {}, undefined, now, durationSeconds);
        if (decision.action === 'wait') return false;
        this.lease = await client.create<Lease>(Leases, { metadata: { name, namespace }, spec: decision.record }, bounded);
        this.observe(decision.record, now);
        this.lastRenewStart = started;
        return true;
      }
      const record = (current.spec ?? {}) as LeaseRecord;
      const decision = decide(identity, record, this.observed, now, durationSeconds);
      if (decision.action === 'wait') {
        if (!this.observed || !sameRecord(this.observed.record, record)) this.observe(record, now);
        return false;
      }
      this.lease = await client.replace<Lease>(Leases, { ...current, spec: { ...current.spec, ...decision.record } }, undefined, bounded);
      this.observe(decision.record, now);
      this.lastRenewStart = started;
      return true;
    } catch (err) {
      // Another candidate wrote first (conflict / already exists): we simply did not win this round.
      if (!isConflict(err) && !isAlreadyExists(err)) this.options.log?.warn('lease round failed', { error: String(err) });
      return false;
    }
  }

  private observe(record: LeaseRecord, atMs: number): void {
    this.observed = { record, observedAtMs: atMs };
    const holder = record.holderIdentity ?? '';
    if (holder && holder !== this.lastLeader) {
      this.lastLeader = holder;
      this.options.onNewLeader?.(holder);
    }
  }

  /** Gives the lease up (holder cleared, 1 s duration) so a successor takes over at once. */
  private async release(): Promise<void> {
    const { client, namespace, name, identity } = this.options;
    try {
      const current = await client.get<Lease>(Leases, name, namespace, { unthrottled: true });
      if (current.spec?.holderIdentity !== identity) return;
      const now = microTime(this.now());
      await client.replace<Lease>(Leases, { ...current, spec: { ...current.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: now, acquireTime: now } }, undefined, { unthrottled: true });
      this.options.log?.info('released lease', { lease: `${namespace}/${name}` });
    } catch (err) {
      if (!isNotFound(err)) this.options.log?.warn('could not release lease', { error: String(err) });
    }
  }
}

function jittered(ms: number): number {
  return ms * (1 + Math.random() * 1.2); // client-go's JitterFactor 1.2
}
