// The manager wires the runtime together for one process: shared informers (one per resource), the
// controllers, leader election, the health/metrics server and graceful shutdown on SIGTERM/SIGINT.
// Informers start at once on every replica (so a new leader starts with warm caches); controllers
// run only while this replica leads.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { aborted } from './abort.js';
import { runFenced, type KubeClient } from './client.js';
import type { Controller } from './controller.js';
import { EventRecorder } from './events.js';
import { Informer, type InformerOptions } from './informer.js';
import { LeaderElector } from './leader-election.js';
import type { Logger } from './log.js';
import type { ResourceType } from '../../api/resources.js';
import { DelegatedAuth } from './delegated-auth.js';
import { selfSignedServingCertificate } from './pki.js';
import { HealthServer, instrumentClient, type Serving } from './telemetry.js';
import type { KubeObject } from '../../api/wire.js';

export interface LeaderElectionConfig {
  enabled: boolean;
  namespace: string;
  leaseName: string;
  identity?: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** Something the manager runs besides controllers, e.g. the webhook server or a repair loop. */
export interface Runnable {
  name: string;
  /** true: only while this replica leads (like controllers); false: on every replica (e.g. a webhook). */
  needsLeaderElection: boolean;
  /** Runs until `signal` aborts; resolves when fully stopped. A rejection stops the whole manager (Manager.run). */
  run(signal: AbortSignal): Promise<void>;
}

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  component: string;
  leaderElection: LeaderElectionConfig;
  /** host:port for /metrics, /healthz and /readyz; empty to serve none. */
  metricsAddress?: string;
  /**
   * Serve them over HTTPS, /metrics only to callers the API server authenticates and authorizes (TokenReview, then
   * SubjectAccessReview for `get` on the non-resource URL /metrics); absent: plain HTTP, open to anyone.
   */
  secureMetrics?: SecureMetricsOptions;
}

export interface SecureMetricsOptions {
  /** A folder with tls.crt and tls.key (a kubernetes.io/tls Secret mounted); empty: a self-signed certificate. */
  certDir?: string;
  /** A CA file: client certificates it signed are accepted as their CN (user) and O (groups), then authorized. */
  clientCAFile?: string;
}

export class Manager {
  readonly client: KubeClient;
  readonly log: Logger;
  readonly events: EventRecorder;
  readonly health = new HealthServer();
  readonly identity: string;
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private readonly controllers: Controller[] = [];
  private readonly runnables: Runnable[] = [];
  private elector: LeaderElector | undefined;
  /** The port /metrics is served on, once running. */
  metricsPort = 0;

  constructor(private readonly options: ManagerOptions) {
    this.client = options.client;
    this.log = options.log;
    this.identity = options.leaderElection.identity ?? defaultIdentity();
    this.events = new EventRecorder(options.client, options.component, hostname(), options.log.child('events'));
    instrumentClient(options.client);
    this.health.addHealthCheck('ping', () => true);
    this.health.addReadyCheck('informers-synced', () => [...this.informers.values()].every((i) => i.hasSynced));
  }

  /** The shared informer for a resource (and selector): every controller reads the same cache. */
  informer<T extends KubeObject>(rt: ResourceType, options: InformerOptions<T> = {}): Informer<T> {
    const key = [rt.group, rt.version, rt.plural, options.namespace ?? '', options.labelSelector ?? '', options.fieldSelector ?? ''].join('|');
    let informer = this.informers.get(key) as Informer<T> | undefined;
    if (!informer) {
      informer = new Informer<T>(this.client, rt, { log: this.log.child('informer', { resource: rt.plural }), ...options });
      this.informers.set(key, informer as unknown as Informer<KubeObject>);
    } else {
      // One cache serves every user: a second transform would drop what the first one's users read, or vice versa.
      if (options.transform && options.transform !== informer.transformFunc) {
        throw new Error(`the ${rt.plural} informer is shared: it was made with another transform`);
      }
      // Jobs register in any order: indexes asked for later are added to the shared store.
      for (const [name, fn] of Object.entries(options.indexers ?? {})) informer.store.addIndexer(name, fn);
    }
    return informer;
  }

  addController(controller: Controller): void {
    this.controllers.push(controller);
  }

  addRunnable(runnable: Runnable): void {
    this.runnables.push(runnable);
  }

  private startRunnables(leading: boolean, signal: AbortSignal, failed: AbortController): Promise<void>[] {
    return this.runnables
      .filter((r) => r.needsLeaderElection === leading)
      .map((r) =>
        r.run(signal).catch((err: unknown) => {
          const error = err instanceof Error ? (err.stack ?? String(err)) : String(err);
          if (signal.aborted) return this.log.warn('runnable failed while stopping', { runnable: r.name, error });
          this.log.error('runnable failed; stopping everything', { runnable: r.name, error });
          failed.abort();
        }),
      );
  }

  private async metricsServing(): Promise<Serving> {
    const secure = this.options.secureMetrics;
    if (!secure) return {};
    const tls = secure.certDir
      ? { certPem: await readFile(join(secure.certDir, 'tls.crt'), 'utf8'), keyPem: await readFile(join(secure.certDir, 'tls.key'), 'utf8') }
      : await selfSignedServingCertificate([hostname(), 'localhost', '127.0.0.1', '::1']);
    const clientCA = secure.clientCAFile ? await readFile(secure.clientCAFile, 'utf8') : undefined;
    return { tls: { ...tls, clientCA }, auth: new DelegatedAuth(this.client) };
  }

  get isLeader(): boolean {
    return !this.options.leaderElection.enabled || (this.elector?.isLeader ?? false);
  }

  /**
   * Runs until `signal` aborts, or until leadership is lost: then leader-only work is stopped at once and the run
   * ends without waiting for anything (controller-runtime's zero grace after a loss), so the process can exit
   * non-zero and restart with fresh state rather than linger as a replica that never campaigns again.
   */
  async run(outer: AbortSignal): Promise<'stopped' | 'lost-leadership' | 'runnable-failed'> {
    // A runnable that fails stops everything, as in controller-runtime: a process missing one of its loops (a speaker
    // that no longer renews its Lease answers nothing, for good) must exit and be restarted, not linger half alive.
    const failed = new AbortController();
    const signal = AbortSignal.any([outer, failed.signal]);
    if (this.options.metricsAddress) {
      this.metricsPort = await this.health.listen(this.options.metricsAddress, await this.metricsServing());
      this.log.info('serving metrics and health', { address: this.options.metricsAddress, port: this.metricsPort, secure: Boolean(this.options.secureMetrics) });
    }
    // Everything but the leader's work stops on shutdown or on a lost lease.
    const everything = new AbortController();
    const stopEverything = () => everything.abort();
    signal.addEventListener('abort', stopEverything, { once: true });
    const everyReplica = signal.aborted ? [] : this.startRunnables(false, everything.signal, failed);
    for (const informer of this.informers.values()) informer.start();
    await Promise.race([Promise.all([...this.informers.values()].map((i) => i.waitForSync())), aborted(signal)]);
    this.log.info('caches synced', { informers: this.informers.size });

    const le = this.options.leaderElection;
    if (!le.enabled) {
      await this.lead(signal, failed);
    } else {
      const elector: LeaderElector = new LeaderElector({
        client: this.client,
        namespace: le.namespace,
        name: le.leaseName,
        identity: this.identity,
        leaseDurationMs: le.leaseDurationMs,
        renewDeadlineMs: le.renewDeadlineMs,
        retryPeriodMs: le.retryPeriodMs,
        log: this.log.child('leader-election'),
        // Leader-only work sends nothing once the lease may have passed to another replica.
        onStartedLeading: (leading) => runFenced(() => elector.mayAct(), () => this.lead(leading, failed)),
        onNewLeader: (id) => this.log.info('leader observed', { leader: id, self: id === this.identity }),
      });
      this.elector = elector;
      this.health.addHealthCheck('leader-election', () => elector.healthy());
      await elector.run(signal);
      if (!signal.aborted) {
        this.log.error('leader election lost; stopping everything', { identity: this.identity });
        everything.abort();
        for (const informer of this.informers.values()) void informer.stop();
        await this.health.close();
        return 'lost-leadership';
      }
    }
    signal.removeEventListener('abort', stopEverything);
    // Each step of a graceful stop is logged, so a stop that hangs shows where.
    await Promise.all(everyReplica);
    this.log.info('runnables stopped');
    for (const informer of this.informers.values()) await informer.stop();
    await this.health.close();
    this.log.info('stopped');
    return failed.signal.aborted ? 'runnable-failed' : 'stopped';
  }

  private async lead(signal: AbortSignal, failed: AbortController): Promise<void> {
    if (signal.aborted) return; // stopped before it began: start nothing that would wait for an abort
    this.log.info('starting controllers', { controllers: this.controllers.map((c) => c.name), identity: this.identity });
    for (const c of this.controllers) c.start();
    const leaderOnly = this.startRunnables(true, signal, failed);
    await aborted(signal);
    this.log.info('stopping controllers');
    await Promise.all([...this.controllers.map((c) => c.stop()), ...leaderOnly]);
    this.log.info('controllers stopped');
  }
}

/** client-go's default leader-election identity: the host name and a random suffix. */
export function defaultIdentity(): string {
  return `${hostname()}_${randomBytes(4).toString('hex')}`;
}

/** An AbortSignal that fires on SIGTERM or SIGINT (a second signal exits at once). */
export function shutdownSignal(log: Logger): AbortSignal {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    log.info('shutting down', { signal: sig });
    controller.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return controller.signal;
}
