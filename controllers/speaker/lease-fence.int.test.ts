// The fence on speaker Leases (lease-fence.ts) against a real API server: a holder (the real NodeLease) and a peer
// (the real SpeakerLiveness and LeaseFencer) whose view of the holder's Lease is only what it read, as a watch that
// delivers nothing for a while.
// - A peer whose view is stale judges a renewing holder dead; its fence conflicts, it re-reads, and the holder is live
//   again: no fence is written, the holder never stops.
// - A holder whose renewal hangs (held in flight, as a frozen or partitioned node's): the peer fences the version it
//   saw; at that moment the holder's window has closed. The held renewal then lands on the old resourceVersion: it
//   conflicts, re-reads, finds the fence and answers nothing; its next renewal lists nothing and clears the fence.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeClient } from '../runtime/client.js';
import { silentLogger } from '../runtime/log.js';
import { Leases } from '../../api/resources.js';
import type { Lease } from '../../api/wire.js';
import { createNamespace, deleteNamespace, eventually, testClient } from '../../e2e/jest/cluster.js';
import { ANSWERING_ANNOTATION, NodeLease, SpeakerLiveness, leaseNameFor } from './node-lease.js';
import { FENCED_BY_ANNOTATION, LeaseFencer } from './lease-fence.js';

const DURATION_MS = 1500;
const RENEW_MS = 500;
const ADDRESS = '192.0.2.10';

/** A client whose requests wait while `held` is set: the holder's renewals hang in flight, then land late. */
function holdableClient(client: KubeClient): { client: KubeClient; hold(): void; release(): void } {
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  const held = new Set(['request', 'getOrUndefined', 'create']);
  const wrapped = new Proxy(client, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (!held.has(String(key))) return method.bind(target);
      return async (...args: unknown[]) => {
        while (gate) await gate;
        return method.apply(target, args);
      };
    },
  });
  return {
    client: wrapped,
    hold: () => {
      gate ??= new Promise((resolve) => (open = resolve));
    },
    release: () => {
      gate = undefined;
      open?.();
    },
  };
}

describe('fencing a speaker Lease (real API server)', () => {
  let client: KubeClient;
  let ns: string;
  const stops: AbortController[] = [];

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'lease-fence');
  });
  afterAll(async () => {
    for (const s of stops) s.abort();
    await deleteNamespace(client, ns);
  });

  function holder(node: string, c: KubeClient) {
    // As the speaker: what it answers is emptied when its window closes (elect() runs on every fence change).
    let answering = [ADDRESS];
    const published: string[][] = [];
    const lease = new NodeLease({
      client: c,
      namespace: ns,
      node,
      durationMs: DURATION_MS,
      renewIntervalMs: RENEW_MS,
      log: silentLogger,
      interfaces: () => undefined,
      answering: () => answering,
      onFenceChange: (fenced) => {
        answering = fenced ? [] : answering;
      },
      onRenewed: (p) => published.push([...p]),
    });
    const stop = new AbortController();
    stops.push(stop);
    const running = lease.run(stop.signal);
    return { lease, published, stop: async () => (stop.abort(), running) };
  }

  function peer(node: string) {
    const liveness = new SpeakerLiveness();
    const settled: Lease[] = [];
    const fencer = new LeaseFencer({
      client,
      namespace: ns,
      node,
      log: silentLogger,
      onSettled: (o) => {
        if ('lease' in o) {
          liveness.observe(o.lease, Date.now());
          settled.push(o.lease);
        }
      },
    });
    const read = async (name: string) => {
      const l = await client.getOrUndefined<Lease>(Leases, name, ns);
      if (l) liveness.observe(l, Date.now());
      return l;
    };
    return { liveness, fencer, settled, read };
  }

  it('a stale view is corrected by the fence’s conflict: the holder renewed, nothing is fenced', async () => {
    const h = holder('node-h1', client);
    await eventually(() => h.lease.live, 10_000, 20);
    const p = peer('node-p1');
    const name = leaseNameFor('node-h1');
    await p.read(name);
    // The peer's "watch" delivers nothing more: after the duration it judges the holder dead.
    await eventually(() => p.liveness.suspects('node-p1', Date.now()).length === 1, 5_000, 20);
    expect(h.lease.live).toBe(true);
    p.fencer.fence(p.liveness.suspects('node-p1', Date.now()));
    await eventually(() => p.settled.length === 1, 5_000, 20);
    expect(p.fencer.fenced).toBe(0);
    expect(p.settled[0].metadata?.annotations?.[FENCED_BY_ANNOTATION]).toBeUndefined();
    expect(p.liveness.live(Date.now()).has('node-h1')).toBe(true);
    expect(p.liveness.suspects('node-p1', Date.now())).toEqual([]);
    expect(h.lease.live).toBe(true);
    await h.stop();
  });

  it('a holder whose renewal hangs is fenced only once its window closed; the late renewal conflicts, answers nothing, and clears the fence', async () => {
    const held = holdableClient(client);
    const h = holder('node-h2', held.client);
    await eventually(() => h.lease.live && h.published.length > 0, 10_000, 20);
    const p = peer('node-p2');
    const name = leaseNameFor('node-h2');
    // The holder's next request hangs; the peer reads the Lease (the last renewal that landed) and hears nothing more.
    held.hold();
    await new Promise((resolve) => setTimeout(resolve, 200)); // a request already past the gate lands first
    await p.read(name);
    await eventually(() => p.liveness.suspects('node-p2', Date.now()).length === 1, 5_000, 10);
    p.fencer.fence(p.liveness.suspects('node-p2', Date.now()));
    await eventually(() => p.settled.length === 1, 5_000, 10);
    // The fence landed, so no renewal did since the version seen: the holder's window is closed by now.
    expect(h.lease.live).toBe(false);
    expect(p.fencer.fenced).toBe(1);
    expect(p.settled[0].metadata?.annotations?.[FENCED_BY_ANNOTATION]).toMatch(/^node-p2 \S+ rv=\d+$/);
    expect(p.liveness.live(Date.now()).has('node-h2')).toBe(false);
    // What the fenced Lease lists blocks the peer for one duration after it first saw that version, then not.
    expect(p.liveness.answeredByOthers('node-p2', Date.now()).get(ADDRESS)).toBe('node-h2');
    await eventually(() => !p.liveness.answeredByOthers('node-p2', Date.now()).has(ADDRESS), 3_000, 20);

    // The held renewal lands on the old resourceVersion: the holder must not reopen its window with the address.
    const publishedBefore = h.published.length;
    held.release();
    await eventually(async () => {
      const l = await p.read(name);
      return l?.metadata?.annotations?.[FENCED_BY_ANNOTATION] === undefined && h.lease.live;
    }, 10_000, 50);
    const after = h.published.slice(publishedBefore);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((a) => a.length === 0)).toBe(true);
    const cleared = await client.getOrUndefined<Lease>(Leases, name, ns);
    expect(cleared?.metadata?.annotations?.[ANSWERING_ANNOTATION]).toBe('[]');
    expect(p.liveness.live(Date.now()).has('node-h2')).toBe(true);
    await h.stop();
  });
});
