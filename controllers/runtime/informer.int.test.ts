// The informer against a real API server: its cache ends equal to the server after bursts, an API
// server restart, a watch that expired (etcd compacted) while it was away, a watch whose connection went
// silent without closing, and objects full of multi-byte text.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import PQueue from 'p-queue';
import { Backoff } from './backoff.js';
import { Informer } from './informer.js';
import { createLogger } from './log.js';
import type { KubeClient } from './client.js';
import { ConfigMaps, Namespaces } from '../../api/resources.js';
import type { KubeObject } from '../../api/wire.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, eventually, testClient } from '../../e2e/jest/cluster.js';
import { StallingProxy, apiServerPort, clientThrough } from '../../testing/stalling-proxy.js';

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

/** name → resourceVersion, as the server has it now. */
async function serverState(client: KubeClient, namespace: string): Promise<Map<string, string>> {
  const list = await client.listAll<ConfigMap>(ConfigMaps, { namespace });
  return new Map(list.items.map((cm) => [cm.metadata!.name!, cm.metadata!.resourceVersion!]));
}

function cacheState(informer: Informer<ConfigMap>): Map<string, string> {
  return new Map(informer.store.list().map((cm) => [cm.metadata!.name!, cm.metadata!.resourceVersion!]));
}

/** What the event handlers alone reconstruct: proves every change reached them, deletes included. */
function trackHandlers(informer: Informer<ConfigMap>): Map<string, string> {
  const seen = new Map<string, string>();
  informer.addEventHandler({
    onAdd: (o) => seen.set(o.metadata!.name!, o.metadata!.resourceVersion!),
    onUpdate: (_old, o) => seen.set(o.metadata!.name!, o.metadata!.resourceVersion!),
    onDelete: (o) => seen.delete(o.metadata!.name!),
  });
  return seen;
}

async function churn(client: KubeClient, namespace: string, prefix: string, creates: number, updates: number, deletes: number): Promise<void> {
  const pool = new PQueue({ concurrency: 10 });
  const limit = <T>(fn: () => Promise<T>) => pool.add(fn);
  await Promise.all(
    Array.from({ length: creates }, (_, i) => limit(() => client.create<ConfigMap>(ConfigMaps, { metadata: { name: `${prefix}-${i}`, namespace }, data: { v: '0' } }))),
  );
  await Promise.all(
    Array.from({ length: updates }, (_, i) =>
      limit(() => client.patch(ConfigMaps, `${prefix}-${i % creates}`, { data: { v: String(i) } }, 'merge', { namespace })),
    ),
  );
  await Promise.all(Array.from({ length: deletes }, (_, i) => limit(() => client.delete(ConfigMaps, `${prefix}-${creates - 1 - i}`, { namespace }))));
}

describe('informer on the shared control plane', () => {
  let client: KubeClient;
  let ns: string;

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'informer');
  });
  afterAll(async () => {
    await deleteNamespace(client, ns);
    client.close();
  });

  it('ends equal to the server after a burst of creates, updates and deletes', async () => {
    await churn(client, ns, 'before', 20, 0, 5); // some state exists before the informer starts
    const informer = new Informer<ConfigMap>(client, ConfigMaps, { namespace: ns });
    const handlerView = trackHandlers(informer);
    informer.start();
    await informer.waitForSync();
    expect(cacheState(informer)).toEqual(await serverState(client, ns));

    await churn(client, ns, 'burst', 200, 150, 80);
    const expected = await serverState(client, ns);
    expect([...expected.keys()].filter((n) => n.startsWith('burst-'))).toHaveLength(120);
    await eventually(() => {
      expect(cacheState(informer)).toEqual(expected);
      expect(handlerView).toEqual(expected);
    }, 30_000);
    expect(informer.listCount).toBe(1);
    await informer.stop();
  });

  it('keeps multi-byte text intact however the watch stream is chunked', async () => {
    const informer = new Informer<ConfigMap>(client, ConfigMaps, { namespace: ns, labelSelector: 'text=multibyte' });
    informer.start();
    await informer.waitForSync();
    // ~60 KB per object in 2-, 3- and 4-byte characters: the stream's TLS records and chunks split many of them.
    const text = (i: number) => `${i}: Grüße · 東京の設定 · 😀🚀🧪 · Ελληνικά · `.repeat(1200);
    for (let i = 0; i < 5; i++) {
      await client.create<ConfigMap>(ConfigMaps, {
        metadata: { name: `utf8-${i}`, namespace: ns, labels: { text: 'multibyte' }, annotations: { 'example.com/text': text(i), 'example.com/label': 'значение ✓' } },
        data: { text: text(i + 100) },
      });
    }
    await eventually(() => informer.store.list().length === 5, 30_000);
    const server = await client.listAll<ConfigMap>(ConfigMaps, { namespace: ns, labelSelector: 'text=multibyte' });
    for (const expected of server.items) {
      const cached = informer.store.get(`${ns}/${expected.metadata!.name}`);
      expect(cached?.metadata?.annotations).toEqual(expected.metadata!.annotations);
      expect(cached?.data).toEqual(expected.data);
    }
    expect(informer.store.get(`${ns}/utf8-3`)?.metadata?.annotations?.['example.com/text']).toBe(text(3));
    await informer.stop();
  });
});

describe('informer behind a connection that goes silent', () => {
  let client: KubeClient;
  let proxy: StallingProxy;
  let ns: string;

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'stall');
    proxy = await StallingProxy.start(apiServerPort(controlPlaneInfo().kubeconfig));
  });
  afterAll(async () => {
    await proxy.close();
    await deleteNamespace(client, ns);
    client.close();
  });

  it('restarts a watch that delivers nothing within the idle timeout, missing nothing', async () => {
    const IDLE_MS = 1500;
    const proxied = clientThrough(proxy, controlPlaneInfo().kubeconfig, { watchIdleTimeoutMs: IDLE_MS });
    const lines: { level: string; msg: string }[] = [];
    const log = createLogger('informer', { level: 'debug', write: (line) => lines.push(JSON.parse(line) as { level: string; msg: string }) });
    // A backoff far longer than the test's bound: the silent stream must be followed by a new watch at once.
    const informer = new Informer<ConfigMap>(proxied, ConfigMaps, { namespace: ns, backoff: new Backoff(60_000, 60_000, 2, 0), log });
    informer.start();
    await informer.waitForSync();
    await client.create<ConfigMap>(ConfigMaps, { metadata: { name: 'before', namespace: ns } });
    await eventually(() => informer.store.get(`${ns}/before`) !== undefined, 10_000);

    // The watch's connection goes silent (no FIN, no RST) while the server keeps changing.
    proxy.stall();
    await client.create<ConfigMap>(ConfigMaps, { metadata: { name: 'during', namespace: ns } });
    await new Promise((r) => setTimeout(r, 500));
    proxy.resume();
    const resumedAt = Date.now();
    await client.create<ConfigMap>(ConfigMaps, { metadata: { name: 'after', namespace: ns } });
    await eventually(() => informer.store.get(`${ns}/during`) !== undefined && informer.store.get(`${ns}/after`) !== undefined, 15_000, 50);
    const recoveredMs = Date.now() - resumedAt;
    process.stderr.write(`[informer] silent watch restarted; caught up ${recoveredMs} ms after the link came back (idle timeout ${IDLE_MS} ms)\n`);
    // Silent since the stall: ended by IDLE_MS after it, then at once a watch from the last version, not a relist.
    expect(recoveredMs).toBeLessThan(IDLE_MS + 3000);
    expect(informer.listCount).toBe(1);
    // A silent stream is routine (an idle type gets no bookmarks): logged at debug, never as a failure.
    expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
    expect(lines.some((l) => l.level === 'debug' && /watching again/.test(l.msg))).toBe(true);
    await informer.stop();
    proxied.close();
  });
});

describe('informer across API server outages', () => {
  let cp: LocalControlPlane;
  let client: KubeClient;
  const ns = 'outage';

  beforeAll(async () => {
    cp = await new LocalControlPlane({ kubeControllerManager: false }).start();
    client = testClient(cp.kubeconfig);
    await client.create(Namespaces, { metadata: { name: ns } });
  });
  afterAll(async () => {
    client?.close();
    await cp?.stop();
  });

  it('resumes its watch after the API server restarts, missing nothing', async () => {
    const informer = new Informer<ConfigMap>(client, ConfigMaps, { namespace: ns });
    const handlerView = trackHandlers(informer);
    informer.start();
    await informer.waitForSync();
    await churn(client, ns, 'a', 10, 5, 2);

    await cp.restartApiServer();
    await churn(client, ns, 'b', 30, 10, 10);
    const expected = await serverState(client, ns);
    await eventually(() => {
      expect(cacheState(informer)).toEqual(expected);
      expect(handlerView).toEqual(expected);
    }, 60_000);
    expect(informer.listCount).toBe(1); // resumed from its resourceVersion, no relist needed
    await informer.stop();
  });

  it('relists after its watch expired (etcd compacted while away) and reports what was deleted', async () => {
    const informer = new Informer<ConfigMap>(client, ConfigMaps, { namespace: ns });
    const handlerView = trackHandlers(informer);
    informer.start();
    await informer.waitForSync();
    const before = cacheState(informer);
    expect(before.size).toBeGreaterThan(0);

    await informer.stop();
    // While it is away: delete everything it knew, add and change other objects, then compact
    // etcd and restart the API server so its watch cache cannot serve the old resourceVersion.
    for (const name of before.keys()) await client.delete(ConfigMaps, name, { namespace: ns });
    await churn(client, ns, 'c', 25, 10, 5);
    await cp.compactEtcd();
    await cp.restartApiServer();

    informer.start();
    const expected = await serverState(client, ns);
    await eventually(() => {
      expect(cacheState(informer)).toEqual(expected);
      expect(handlerView).toEqual(expected);
    }, 60_000);
    expect(informer.listCount).toBe(2); // the watch answered 410 Gone and it relisted
    for (const name of before.keys()) expect(handlerView.has(name)).toBe(false);
    await informer.stop();
  });
});
