// The wiring helpers' decisions without an API server: which slice events sync an owner, how skipped input is
// reported, and how writes are sent.
import { describe, expect, it } from '@jest/globals';
import { ApiError, type KubeClient } from '../runtime/client.js';
import type { EventSink, EventType } from '../runtime/events.js';
import { createLogger } from '../runtime/log.js';
import type { EndpointSlice, Pod } from '../../api/wire.js';
import { EndpointCaches, podForEndpoints } from './informers.js';
import { Informer } from '../runtime/informer.js';
import type { Manager } from '../runtime/manager.js';
import { makePod, makeService } from '../../testing/endpoint-objects.js';
import { stripManagedFields } from '../runtime/informer.js';
import { applySliceWrites, isNamespaceTerminating } from './api-writes.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY } from '../endpointutil/constants.js';
import type { SkippedItem } from '../endpointutil/report.js';
import { SkipReporter } from './skip-reporter.js';
import { sliceEventHandlers } from './slice-events.js';
import { MAX_RETRY_DELAY_MS, retryLimiter, workLoop } from './controller-parts.js';
import { CacheCatchUp } from './cache-catch-up.js';
import { ItemExponentialFailureRateLimiter } from '../runtime/rate-limiter.js';
import { EndpointSliceTracker } from '../endpointutil/tracker.js';

const OURS = 'ours.example';

function slice(uid: string, generation: number, labels: Record<string, string> = { [LABEL_ENDPOINTSLICE_SERVICE_NAME]: 'web', [LABEL_MANAGED_BY]: OURS }): EndpointSlice {
  return { metadata: { name: `web-${uid}`, namespace: 'ns', uid, generation, labels }, addressType: 'IPv4', endpoints: [] };
}

function capture() {
  const lines: string[] = [];
  return { lines, log: createLogger('test', { level: 'debug', write: (line) => lines.push(line) }) };
}

describe('sliceEventHandlers', () => {
  function setUp() {
    const tracker = new EndpointSliceTracker();
    const synced: string[] = [];
    const { lines, log } = capture();
    return { tracker, synced, lines, handlers: sliceEventHandlers(tracker, OURS, (key) => synced.push(key), log) };
  }

  it('ignores echoes of our own writes and reacts to newer generations', () => {
    const { tracker, synced, handlers } = setUp();
    tracker.update(slice('a', 2));
    handlers.onAdd!(slice('a', 2));
    handlers.onUpdate!(slice('a', 1), slice('a', 2));
    expect(synced).toEqual([]);
    handlers.onUpdate!(slice('a', 2), slice('a', 3)); // someone edited it
    handlers.onAdd!(slice('b', 1)); // a slice we do not know
    expect(synced).toEqual(['ns/web', 'ns/web']);
  });

  it('syncs both owners when the service-name label moves, and either side of a managed-by change', () => {
    const { synced, handlers } = setUp();
    handlers.onUpdate!(slice('a', 1), slice('a', 1, { [LABEL_ENDPOINTSLICE_SERVICE_NAME]: 'other', [LABEL_MANAGED_BY]: OURS }));
    handlers.onUpdate!(slice('b', 1, { [LABEL_ENDPOINTSLICE_SERVICE_NAME]: 'web', [LABEL_MANAGED_BY]: 'someone-else' }), slice('b', 1));
    handlers.onUpdate!(slice('c', 1, { [LABEL_ENDPOINTSLICE_SERVICE_NAME]: 'web', [LABEL_MANAGED_BY]: 'x' }), slice('c', 2, { [LABEL_ENDPOINTSLICE_SERVICE_NAME]: 'web', [LABEL_MANAGED_BY]: 'y' }));
    expect(synced).toEqual(['ns/web', 'ns/other', 'ns/web']);
  });

  it('re-syncs after a deletion it did not make, not after its own', () => {
    const { tracker, synced, handlers } = setUp();
    tracker.update(slice('a', 1));
    tracker.update(slice('b', 1));
    tracker.expectDeletion(slice('b', 1));
    handlers.onDelete!(slice('b', 1));
    expect(synced).toEqual([]);
    handlers.onDelete!(slice('a', 1));
    expect(synced).toEqual(['ns/web']);
  });

  it('re-judges a sync asked for by an echo once the delay ends: our write\'s answer may have come after its event', () => {
    const tracker = new EndpointSliceTracker();
    const asked: [string, () => boolean][] = [];
    const handlers = sliceEventHandlers(tracker, OURS, (key, stillNeeded) => asked.push([key, stillNeeded]), capture().log);
    tracker.update(slice('a', 1));
    handlers.onAdd!(slice('b', 1)); // the echo of our create, read before the create's answer
    handlers.onUpdate!(slice('a', 1), slice('a', 2)); // the echo of our update, likewise
    handlers.onUpdate!(slice('c', 1), slice('c', 4)); // someone else's edit
    expect(asked.map(([key]) => key)).toEqual(['ns/web', 'ns/web', 'ns/web']);
    tracker.update(slice('b', 1)); // the answers arrive
    tracker.update(slice('a', 2));
    tracker.update(slice('c', 3));
    expect(asked.map(([, stillNeeded]) => stillNeeded())).toEqual([false, false, true]);
    // A slice that moved to another owner is synced whatever the tracker says.
    handlers.onUpdate!(slice('a', 2), slice('a', 2, { [LABEL_ENDPOINTSLICE_SERVICE_NAME]: 'other', [LABEL_MANAGED_BY]: OURS }));
    expect(asked.slice(3).map(([key, stillNeeded]) => [key, stillNeeded()])).toEqual([['ns/web', true], ['ns/other', true]]);
  });

  it('says so when a slice of ours names no Service', () => {
    const { synced, lines, handlers } = setUp();
    handlers.onAdd!(slice('a', 1, { [LABEL_MANAGED_BY]: OURS }));
    expect(synced).toEqual([]);
    expect(lines.join('\n')).toContain('no service-name label');
  });
});

describe('SkipReporter', () => {
  const item = (code: SkippedItem['code'], name: string): SkippedItem => ({ kind: code.startsWith('Service') ? 'ServicePort' : 'Pod', name, code, reason: `${code} for ${name}` });

  function setUp() {
    const events: { type: EventType; reason: string; message: string }[] = [];
    const sink: EventSink = { event: (_obj, type, reason, message) => events.push({ type, reason, message }) };
    const { lines, log } = capture();
    return { events, lines, reporter: new SkipReporter(log, sink) };
  }

  it('reports a key again only when what it skips changes', () => {
    const { lines, reporter } = setUp();
    reporter.report('ns/web', {}, [item('PodNoIP', 'a')]);
    reporter.report('ns/web', {}, [item('PodNoIP', 'a')]);
    expect(lines).toHaveLength(1);
    reporter.report('ns/web', {}, []);
    reporter.report('ns/web', {}, [item('PodNoIP', 'a')]);
    expect(lines).toHaveLength(2);
  });

  it('raises one Warning Event per reason for problems only the owner can fix', () => {
    const { events, reporter } = setUp();
    reporter.report('ns/web', {}, [item('ServicePortInvalid', '#0'), item('ServicePortCollision', 'http'), item('PodPortNotFound', 'p')]);
    expect(events).toEqual([{ type: 'Warning', reason: 'SkippedServicePort', message: 'Skipped ServicePort #0: ServicePortInvalid for #0; ServicePort http: ServicePortCollision for http' }]);
  });
});

describe('applySliceWrites', () => {
  const namespaceTerminating = new ApiError(403, { reason: 'Forbidden', details: { causes: [{ reason: 'NamespaceTerminating' }] } }, 'POST', '/x');
  const notFound = new ApiError(404, { reason: 'NotFound' }, 'DELETE', '/x');

  // A stand-in for the three calls the function makes; the rest of KubeClient is never touched.
  function fakeClient(fail: { create?: ApiError; delete?: ApiError } = {}) {
    const calls: string[] = [];
    let n = 0;
    const client = {
      createForMetadata: async (_rt: unknown, obj: EndpointSlice) => {
        calls.push('create');
        if (fail.create) throw fail.create;
        return { metadata: { ...obj.metadata, name: `new-${++n}`, uid: `u${n}`, generation: 1 } };
      },
      replaceUntracked: async (_rt: unknown, obj: EndpointSlice) => (calls.push(`update ${obj.metadata?.name}`), { metadata: { ...obj.metadata, generation: 2 } }),
      delete: async (_rt: unknown, name: string, opts: { uid?: string }) => {
        calls.push(`delete ${name} uid=${opts.uid}`);
        if (fail.delete) throw fail.delete;
      },
    };
    return { calls, client: client as unknown as KubeClient };
  }

  const writes = () => ({ toCreate: [slice('', 0)], toUpdate: [slice('b', 1)], toDelete: [slice('c', 1)] });

  it('sends creates, updates, then deletes with a uid precondition, and tells the tracker', async () => {
    const { calls, client } = fakeClient();
    const tracker = new EndpointSliceTracker();
    const operations: string[] = [];
    const result = await applySliceWrites(client, tracker, writes(), 'ns/web', (op) => operations.push(op));
    expect(calls).toEqual(['create', 'update web-b', 'delete web-c uid=c']);
    expect(operations).toEqual(['create', 'update', 'delete']);
    expect(result.namespaceTerminating).toBe(false);
    expect(tracker.shouldSync(slice('b', 2))).toBe(false);
    expect(tracker.handleDeletion(slice('c', 1))).toBe(true);
  });

  it('stops quietly when the namespace is terminating: no delete is sent', async () => {
    const { calls, client } = fakeClient({ create: namespaceTerminating });
    expect(isNamespaceTerminating(namespaceTerminating)).toBe(true);
    const result = await applySliceWrites(client, new EndpointSliceTracker(), writes(), 'ns/web');
    expect(result.namespaceTerminating).toBe(true);
    expect(calls).toEqual(['create', 'update web-b']);
  });

  // One after the other, a sync of one big Service that wrote 9 slices under load took 0.7 s (issue 13).
  it('sends the creates and updates of a sync together, and the deletes once they have all answered', async () => {
    const calls: string[] = [];
    const answers: (() => void)[] = [];
    const held = <T>(call: string, value: T) => {
      calls.push(call);
      return new Promise<T>((resolve) => answers.push(() => resolve(value)));
    };
    const client = {
      createForMetadata: (_rt: unknown, obj: EndpointSlice) => held('create', { metadata: { ...obj.metadata, name: 'web-new', uid: 'n', generation: 1 } }),
      replaceUntracked: (_rt: unknown, obj: EndpointSlice) => held(`update ${obj.metadata?.name}`, { metadata: { ...obj.metadata, generation: 2 } }),
      delete: (_rt: unknown, name: string) => held(`delete ${name}`, undefined),
    } as unknown as KubeClient;
    const tracker = new EndpointSliceTracker();
    const applied = applySliceWrites(client, tracker, { toCreate: [slice('', 0)], toUpdate: [slice('b', 1), slice('d', 1)], toDelete: [slice('c', 1), slice('e', 1)] }, 'ns/web');
    const settle = () => new Promise((r) => setImmediate(r));
    await settle();
    expect(calls).toEqual(['create', 'update web-b', 'update web-d']);
    answers.splice(0, 2).forEach((answer) => answer());
    await settle();
    expect(calls).toHaveLength(3); // an update is still waiting for its answer
    answers.splice(0).forEach((answer) => answer());
    await settle();
    expect(calls.slice(3)).toEqual(['delete web-c', 'delete web-e']);
    answers.splice(0).forEach((answer) => answer());
    await expect(applied).resolves.toEqual({ namespaceTerminating: false });
    expect(tracker.shouldSync(slice('b', 2))).toBe(false);
    expect(tracker.shouldSync(slice('d', 2))).toBe(false);
  });

  it('fails the sync on a failed update once the writes sent with it have answered, and sends no delete', async () => {
    const calls: string[] = [];
    const client = {
      createForMetadata: async (_rt: unknown, obj: EndpointSlice) => (calls.push('create'), { metadata: { ...obj.metadata, name: 'web-new', uid: 'n', generation: 1 } }),
      replaceUntracked: async (_rt: unknown, obj: EndpointSlice) => {
        calls.push(`update ${obj.metadata?.name}`);
        if (obj.metadata?.name === 'web-b') throw new ApiError(409, { reason: 'Conflict', message: 'the object has been modified' }, 'PUT', '/x');
        await new Promise((r) => setImmediate(r));
        return { metadata: { ...obj.metadata, generation: 2 } };
      },
      delete: async (_rt: unknown, name: string) => void calls.push(`delete ${name}`),
    } as unknown as KubeClient;
    const tracker = new EndpointSliceTracker();
    await expect(applySliceWrites(client, tracker, { toCreate: [], toUpdate: [slice('b', 1), slice('d', 1)], toDelete: [slice('c', 1)] }, 'ns/web')).rejects.toThrow(
      'failed to update web-b EndpointSlice for Service ns/web: PUT /x: 409 Conflict the object has been modified',
    );
    expect(calls).toEqual(['update web-b', 'update web-d']);
    expect(tracker.shouldSync(slice('d', 2))).toBe(false); // the write that succeeded is known: its echo is ours
  });

  it('counts a slice already gone as deleted', async () => {
    const { client } = fakeClient({ delete: notFound });
    await expect(applySliceWrites(client, new EndpointSliceTracker(), writes(), 'ns/web')).resolves.toMatchObject({ namespaceTerminating: false });
  });
});

// Issue 13: upstream drops a key after 15 failed retries, and nothing (no resync) brings it back before its next change.
describe('the endpoint controllers\' work loop', () => {
  it('never gives up on a failing key', async () => {
    let calls = 0;
    const loop = workLoop('never-gives-up', async () => {
      if (++calls <= 20) throw new Error('still failing');
    }, 1, new ItemExponentialFailureRateLimiter<string>(0, 0), capture().log);
    loop.start();
    loop.enqueue('ns/web');
    for (let i = 0; i < 500 && calls < 21; i++) await new Promise((r) => setTimeout(r, 2));
    await loop.stop();
    expect(calls).toBe(21);
  });

  it('retries at least every MAX_RETRY_DELAY_MS', () => {
    const limiter = retryLimiter(1000);
    const delays = Array.from({ length: 30 }, () => limiter.when('ns/web'));
    expect(delays[0]).toBe(1000);
    expect(Math.max(...delays)).toBe(MAX_RETRY_DELAY_MS);
  });
});

describe('CacheCatchUp', () => {
  it('resolves at once when fresh, after the event that makes it fresh, and gives up after its timeout', async () => {
    const catchUp = new CacheCatchUp('test', 50);
    await expect(catchUp.caughtUp('k', () => false)).resolves.toBe(true);
    let stale = true;
    const waiting = catchUp.caughtUp('k', () => stale);
    catchUp.notify('k'); // an event that does not make it fresh: it keeps waiting
    await new Promise((r) => setTimeout(r, 5));
    stale = false;
    catchUp.notify('other');
    catchUp.notify('k');
    await expect(waiting).resolves.toBe(true);
    await expect(catchUp.caughtUp('k', () => true)).resolves.toBe(false);
  });
});

describe('podForEndpoints', () => {
  it('keeps what the endpoint controllers read and drops the rest of a Pod', () => {
    const pod: Pod = {
      metadata: {
        name: 'p',
        namespace: 'ns',
        uid: 'u',
        resourceVersion: '7',
        labels: { app: 'web' },
        annotations: { big: 'x'.repeat(1000) },
        managedFields: [{ manager: 'kubelet' }],
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'r' }],
      },
      spec: {
        nodeName: 'n1',
        hostname: 'h',
        subdomain: 's',
        containers: [
          { name: 'app', image: 'i', env: [{ name: 'A', value: 'B' }], ports: [{ name: 'http', containerPort: 8080 }] },
          { name: 'log', image: 'j' },
        ],
        initContainers: [{ name: 'side', image: 'k', restartPolicy: 'Always', ports: [{ name: 'm', containerPort: 9090 }] }],
        volumes: [{ name: 'v', emptyDir: {} }],
      },
      status: {
        phase: 'Running',
        podIP: '10.0.0.1',
        podIPs: [{ ip: '10.0.0.1' }],
        conditions: [
          { type: 'PodScheduled', status: 'True' },
          { type: 'Ready', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' },
        ],
        containerStatuses: [{ name: 'app', image: 'i', imageID: 'x', ready: true, restartCount: 0 }],
      },
    };
    expect(JSON.parse(JSON.stringify(stripManagedFields(podForEndpoints(structuredClone(pod)))))).toEqual({
      metadata: { name: 'p', namespace: 'ns', uid: 'u', resourceVersion: '7', labels: { app: 'web' } },
      spec: {
        nodeName: 'n1',
        hostname: 'h',
        subdomain: 's',
        containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }],
        initContainers: [{ name: 'side', restartPolicy: 'Always', ports: [{ name: 'm', containerPort: 9090 }] }],
      },
      status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }], conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
    });
    const slice: EndpointSlice = { metadata: { name: 's', managedFields: [{ manager: 'x' }] }, addressType: 'IPv4', endpoints: [] };
    expect(stripManagedFields(slice).metadata).toEqual({ name: 's' });
  });
});

describe('EndpointCaches.podsOf', () => {
  // Informers that are never started: the test fills their stores by hand.
  const manager = { informer: (rt: ConstructorParameters<typeof Informer>[1], options: object) => new Informer(undefined as unknown as KubeClient, rt, options) } as unknown as Manager;

  it("lists the pods of the Service's namespace that carry every label of its selector, from the label index", () => {
    const caches = new EndpointCaches(manager);
    const pods = [
      makePod('web-1', 1, { labels: { app: 'web', tier: 'front' } }),
      makePod('web-2', 2, { labels: { app: 'web', tier: 'back' } }),
      makePod('web-3', 3, { labels: { app: 'web', tier: 'front', extra: 'x' } }),
      makePod('other-ns', 4, { labels: { app: 'web', tier: 'front' }, namespace: 'elsewhere' }),
      makePod('db', 5, { labels: { app: 'db', tier: 'front' } }),
    ];
    for (const pod of pods) caches.pods.store.upsert(pod);
    const names = (selector: Record<string, string> | null) => caches.podsOf(makeService({ selector })).map((pod) => pod.metadata?.name).sort();
    expect(names({ app: 'web', tier: 'front' })).toEqual(['web-1', 'web-3']);
    expect(names({ app: 'web' })).toEqual(['web-1', 'web-2', 'web-3']);
    expect(names({ app: 'web', tier: 'none' })).toEqual([]);
    expect(names(null)).toEqual([]);
    // A pod whose labels change moves between buckets.
    caches.pods.store.upsert(makePod('web-2', 2, { labels: { app: 'web', tier: 'front' } }));
    expect(names({ app: 'web', tier: 'front' })).toEqual(['web-1', 'web-2', 'web-3']);
    caches.pods.store.remove('default/web-1');
    expect(names({ app: 'web', tier: 'front' })).toEqual(['web-2', 'web-3']);
  });
});
