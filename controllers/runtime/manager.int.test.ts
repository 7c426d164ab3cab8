// The manager's outward signs on a real API server: /metrics, /healthz and /readyz, Events that are
// correlated like client-go's (and re-created when they expired), controllers that reconcile what informers see,
// a run that ends at once when leadership is lost, and one that ends when a runnable fails.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request } from 'node:http';
import type { KubeClient } from './client.js';
import { Controller } from './controller.js';
import { involvedObjectOf } from './events.js';
import { silentLogger } from './log.js';
import { Manager } from './manager.js';
import { ConfigMaps, Events, Leases } from '../../api/resources.js';
import type { KubeEvent, KubeObject, Lease } from '../../api/wire.js';
import { microTime } from './leader-election.js';
import { createNamespace, deleteNamespace, eventually, testClient } from '../../e2e/jest/cluster.js';

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('manager', () => {
  let client: KubeClient;
  let ns: string;
  const stop = new AbortController();
  let manager: Manager;
  let running: Promise<unknown>;
  const reconciled: string[] = [];

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'mgr');
    manager = new Manager({
      client,
      log: silentLogger,
      component: 'switchboard-test',
      metricsAddress: '127.0.0.1:0',
      leaderElection: { enabled: false, namespace: ns, leaseName: 'x', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2000 },
    });
    const informer = manager.informer<KubeObject>(ConfigMaps, { namespace: ns });
    const controller = new Controller({
      name: 'configmap-echo',
      log: silentLogger,
      reconcile: async (key) => {
        reconciled.push(key);
      },
    });
    informer.addEventHandler({ onAdd: (o) => controller.enqueue(`${o.metadata!.namespace}/${o.metadata!.name}`) });
    manager.addController(controller);
    running = manager.run(stop.signal);
    await eventually(() => manager.metricsPort > 0);
  });

  afterAll(async () => {
    stop.abort();
    await running;
    await deleteNamespace(client, ns);
    client.close();
  });

  it('reconciles what its informers see', async () => {
    await client.create(ConfigMaps, { metadata: { name: 'hello', namespace: ns } });
    await eventually(() => reconciled.includes(`${ns}/hello`));
  });

  it('serves /healthz, /readyz and Prometheus metrics with the runtime metric names', async () => {
    expect(await get(manager.metricsPort, '/healthz')).toMatchObject({ status: 200 });
    const ready = await eventually(async () => {
      const r = await get(manager.metricsPort, '/readyz');
      return r.status === 200 ? r : false;
    });
    expect(ready.body).toContain('[+]informers-synced ok');
    const metrics = await eventually(async () => {
      const r = await get(manager.metricsPort, '/metrics');
      return r.body.includes('switchboard_reconcile_total') ? r.body : false;
    });
    for (const name of ['switchboard_api_requests_total', 'switchboard_api_request_duration_seconds_bucket', 'switchboard_reconcile_duration_seconds_bucket', 'workqueue_adds_total']) {
      expect(metrics).toContain(name);
    }
    expect(metrics).toMatch(/switchboard_reconcile_total\{controller="configmap-echo",result="success"\} \d+/);
    expect((await get(manager.metricsPort, '/nope')).status).toBe(404);
  });

  it('writes Events and bumps the count of a repeated one instead of writing another', async () => {
    const cm = await client.create<KubeObject>(ConfigMaps, { metadata: { name: 'evented', namespace: ns } });
    const involved = involvedObjectOf(cm, { apiVersion: 'v1', kind: 'ConfigMap' });
    manager.events.event(involved, 'Warning', 'TestReason', 'something happened');
    await eventually(async () => (await client.list<KubeEvent>(Events, { namespace: ns })).items.some((e) => e.reason === 'TestReason'));
    manager.events.event(involved, 'Warning', 'TestReason', 'something happened');
    manager.events.event(involved, 'Warning', 'TestReason', 'something happened');
    const bumped = await eventually(async () => {
      const events = (await client.list<KubeEvent>(Events, { namespace: ns })).items.filter((e) => e.reason === 'TestReason');
      return events.length === 1 && events[0].count === 3 ? events[0] : false;
    });
    expect(bumped).toMatchObject({ type: 'Warning', message: 'something happened', involvedObject: { kind: 'ConfigMap', name: 'evented' }, source: { component: 'switchboard-test' } });
  });

  it('re-creates a repeated Event that expired (or was deleted) since it was last written', async () => {
    const cm = await client.create<KubeObject>(ConfigMaps, { metadata: { name: 'expiring', namespace: ns } });
    const involved = involvedObjectOf(cm, { apiVersion: 'v1', kind: 'ConfigMap' });
    const expiring = async () => (await client.list<KubeEvent>(Events, { namespace: ns })).items.filter((e) => e.reason === 'Expiring');
    manager.events.event(involved, 'Normal', 'Expiring', 'still pending');
    const [first] = await eventually(async () => {
      const events = await expiring();
      return events.length === 1 ? events : false;
    });
    // What the API server's event TTL does after an hour.
    await client.delete(Events, first.metadata!.name!, { namespace: ns });
    manager.events.event(involved, 'Normal', 'Expiring', 'still pending');
    const recreated = await eventually(async () => {
      const events = await expiring();
      return events.length === 1 ? events[0] : false;
    }, 10_000);
    expect(recreated).toMatchObject({ message: 'still pending', count: 2, involvedObject: { name: 'expiring' } });
  });
});

describe('manager losing its leadership', () => {
  let client: KubeClient;
  let ns: string;

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'mgr-lost');
  });
  afterAll(async () => {
    await deleteNamespace(client, ns);
    client.close();
  });

  it('stops leader-only work at once and ends its run, though every-replica runnables would run until shutdown', async () => {
    const shutdown = new AbortController();
    const manager = new Manager({
      client,
      log: silentLogger,
      component: 'switchboard-test',
      metricsAddress: '127.0.0.1:0',
      leaderElection: { enabled: true, namespace: ns, leaseName: 'lost', identity: 'me', leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 300 },
    });
    const stoppedAt: Record<string, number> = {};
    let leading = false;
    const runUntilAborted = (name: string, onStart?: () => void) => (signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        onStart?.();
        signal.addEventListener('abort', () => ((stoppedAt[name] = Date.now()), resolve()), { once: true });
      });
    manager.addRunnable({ name: 'webhook-like', needsLeaderElection: false, run: runUntilAborted('webhook-like') });
    manager.addRunnable({ name: 'leader-only', needsLeaderElection: true, run: runUntilAborted('leader-only', () => (leading = true)) });
    const run = manager.run(shutdown.signal);
    await eventually(() => leading, 15_000, 50);
    expect(await get(manager.metricsPort, '/healthz')).toMatchObject({ status: 200, body: expect.stringContaining('[+]leader-election ok') });

    // Another holder takes the lease over (as after a long partition): our next renewal sees it.
    const lease = await client.get<Lease>(Leases, 'lost', ns);
    const takenAt = Date.now();
    await client.replace<Lease>(Leases, { ...lease, spec: { ...lease.spec, holderIdentity: 'thief', leaseDurationSeconds: 3600, renewTime: microTime(takenAt) } });
    const outcome = await Promise.race([run, new Promise<string>((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
    shutdown.abort();
    expect(outcome).toBe('lost-leadership');
    // One retry period (jitter-free while leading) after the takeover, plus the request times.
    expect(stoppedAt['leader-only'] - takenAt).toBeLessThan(1500);
    expect(stoppedAt['webhook-like']).toBeGreaterThanOrEqual(stoppedAt['leader-only']);
  });
});

describe('manager with a failing runnable', () => {
  let client: KubeClient;

  beforeAll(() => {
    client = testClient();
  });
  afterAll(() => client.close());

  /** No metrics, no leader election, no informers: only the runnables. */
  const bareManager = (): Manager =>
    new Manager({
      client,
      log: silentLogger,
      component: 'switchboard-test',
      leaderElection: { enabled: false, namespace: 'default', leaseName: '', leaseDurationMs: 0, renewDeadlineMs: 0, retryPeriodMs: 0 },
    });

  it('stops everything and ends its run as failed: a process missing one of its loops exits instead of lingering', async () => {
    const shutdown = new AbortController();
    const manager = bareManager();
    const started: string[] = [];
    const stopped: string[] = [];
    const untilAborted = (name: string) => (signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        started.push(name);
        signal.addEventListener('abort', () => (stopped.push(name), resolve()), { once: true });
      });
    let fail: (err: Error) => void = () => undefined;
    manager.addRunnable({ name: 'every-replica', needsLeaderElection: false, run: untilAborted('every-replica') });
    manager.addRunnable({ name: 'leader-only', needsLeaderElection: true, run: untilAborted('leader-only') });
    manager.addRunnable({ name: 'lease-loop', needsLeaderElection: false, run: () => new Promise<void>((_, reject) => (fail = reject)) });
    const run = manager.run(shutdown.signal);
    await eventually(() => started.length === 2);
    fail(new Error('renewal loop broke'));
    const outcome = await Promise.race([run, new Promise<string>((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
    shutdown.abort();
    expect({ outcome, stopped: stopped.sort() }).toEqual({ outcome: 'runnable-failed', stopped: ['every-replica', 'leader-only'] });
  });

  it('a runnable that rejects while stopping is no failure', async () => {
    const shutdown = new AbortController();
    const manager = bareManager();
    manager.addRunnable({
      name: 'rejects-on-abort',
      needsLeaderElection: false,
      run: (signal) => new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true })),
    });
    const run = manager.run(shutdown.signal);
    await new Promise((r) => setTimeout(r, 200));
    shutdown.abort();
    expect(await run).toBe('stopped');
  });
});
