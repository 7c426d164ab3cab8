// Make-before-break handover without a network: who is leaving, how the election treats a leaving node, and how long
// a leaving node keeps answering what it hands over.
import { describe, expect, it } from '@jest/globals';
import type { KubeClient } from '../runtime/client.js';
import { microTime } from '../runtime/leader-election.js';
import { silentLogger } from '../runtime/log.js';
import type { EndpointSlice, Lease, Node } from '../../api/wire.js';
import { parsePools } from '../../allocators/loadbalancer/pools.js';
import { pool, service } from '../../testing/lb.js';
import { prng } from '../../testing/prng.js';
import { parseL2Advertisements } from './advertisements.js';
import { HANDOVER_LINGER_MS, HANDOVER_TIMEOUT_MS, Handover, LEAVING_ANNOTATION, OUT_OF_SERVICE_TAINT, isLeavingNode } from './handover.js';
import { NodeLease, SpeakerLiveness, leaseNameFor } from './node-lease.js';
import { planAnnouncements } from './plan.js';
import type { Announcement } from './responder.js';

const node = (name: string, spec: Node['spec'] = {}): Node => ({ metadata: { name, labels: {} }, spec });
const ready: EndpointSlice = { metadata: { name: 's' }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.0.1'], conditions: { ready: true } }] };

describe('leaving nodes', () => {
  it('are cordoned nodes and nodes with the out-of-service taint', () => {
    expect(isLeavingNode(node('a'))).toBe(false);
    expect(isLeavingNode(node('b', { unschedulable: true }))).toBe(true);
    expect(isLeavingNode(node('c', { taints: [{ key: OUT_OF_SERVICE_TAINT, value: 'nodeshutdown', effect: 'NoExecute' }] }))).toBe(true);
    expect(isLeavingNode(node('d', { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }] }))).toBe(false);
  });

  it('and speakers whose live Lease says so', () => {
    const l = new SpeakerLiveness();
    const lease = (holder: string, renewMs: number, leaving: boolean): Lease => ({
      metadata: { name: leaseNameFor(holder), annotations: leaving ? { [LEAVING_ANNOTATION]: microTime(renewMs) } : {} },
      spec: { holderIdentity: holder, leaseDurationSeconds: 2, renewTime: microTime(renewMs) },
    });
    l.observe(lease('going', 10_000, true), 10_000);
    l.observe(lease('staying', 10_000, false), 10_000);
    l.observe(lease('gone', 0, true), 10_000);
    expect(l.leaving(10_500)).toEqual(new Set(['going']));
    expect(l.leaving(12_500)).toEqual(new Set());
  });

  it('lose every address to a node that is not leaving, win where no other node can, and move nothing else', () => {
    const random = prng(20261130);
    const names = ['n1', 'n2', 'n3', 'n4'];
    const addresses = Array.from({ length: 200 }, () => `192.0.2.${1 + Math.floor(random() * 254)}`);
    const services = [...new Set(addresses)].map((a, i) => service(`s${i}`, { ingress: [a] }));
    const plan = (self: string, leaving: string[], nodes = names) =>
      planAnnouncements({
        self,
        services,
        slicesOf: () => [ready],
        nodes: nodes.map((n) => node(n)),
        live: new Set(nodes),
        leaving: new Set(leaving),
        pools: parsePools([pool('lan', ['192.0.2.0/24'])]).pools,
        advertisements: parseL2Advertisements([{ metadata: { name: 'all' } }]).advertisements,
        published: new Map(),
      });
    const winners = (leaving: string[], nodes = names) => new Map([...plan('n1', leaving, nodes).services].map(([k, p]) => [k, p.result.winner]));
    const before = winners([]);
    const after = winners(['n2']);
    expect([...before.values()].filter((w) => w === 'n2').length).toBeGreaterThan(20);
    for (const [key, winner] of after) {
      expect(winner).not.toBe('n2');
      if (before.get(key) !== 'n2') expect(winner).toBe(before.get(key));
    }
    // Alone, or all leaving: a leaving node still announces (the election ranks, it does not exclude).
    expect(new Set(winners(['n2'], ['n2']).values())).toEqual(new Set(['n2']));
    expect(winners(names)).toEqual(before);
  });
});

describe('the leaving node’s handover', () => {
  const a = (interfaces?: string[], handingOver?: boolean): Announcement => ({ interfaces: interfaces ? new Set(interfaces) : undefined, ...(handingOver ? { handingOver } : {}) });
  const answering = new Map([
    ['192.0.2.1', a(['eth0'])],
    ['192.0.2.2', a()],
    ['192.0.2.3', a()],
  ]);

  it('keeps answering what it lost until the successor lists it (and a linger), or the timeout; never when not leaving', () => {
    const ended: [string, string | undefined][] = [];
    const h = new Handover((address, successor) => ended.push([address, successor]));
    const won = new Set(['192.0.2.3']); // no other node can take this one: answered until the process exits
    expect(h.pass({ leaving: false, answering, won: new Set(), listedByOthers: new Map(), now: 0 })).toEqual(new Map());
    const t0 = 1000;
    expect(h.pass({ leaving: true, answering, won, listedByOthers: new Map(), now: t0 })).toEqual(new Map([['192.0.2.1', a(['eth0'], true)], ['192.0.2.2', a(undefined, true)]]));
    expect([h.size, h.nextDeadline()]).toEqual([2, t0 + HANDOVER_TIMEOUT_MS]);
    // The successor of .1 lists it: answered HANDOVER_LINGER_MS more, then not.
    const listed = new Map([['192.0.2.1', 'n2']]);
    expect([...h.pass({ leaving: true, answering, won, listedByOthers: listed, now: t0 + 100 }).keys()]).toEqual(['192.0.2.1', '192.0.2.2']);
    expect(h.nextDeadline()).toBe(t0 + 100 + HANDOVER_LINGER_MS);
    expect([...h.pass({ leaving: true, answering, won, listedByOthers: listed, now: t0 + 100 + HANDOVER_LINGER_MS - 1 }).keys()]).toEqual(['192.0.2.1', '192.0.2.2']);
    const after = h.pass({ leaving: true, answering, won, listedByOthers: listed, now: t0 + 100 + HANDOVER_LINGER_MS });
    expect([...after.keys()]).toEqual(['192.0.2.2']);
    expect(ended).toEqual([['192.0.2.1', 'n2']]);
    expect([h.has('192.0.2.1'), h.has('192.0.2.2')]).toEqual([false, true]);
    // Nobody takes .2: it stops at the timeout anyway.
    const left = new Map([...answering].filter(([k]) => k !== '192.0.2.1'));
    expect([...h.pass({ leaving: true, answering: left, won, listedByOthers: new Map(), now: t0 + HANDOVER_TIMEOUT_MS - 1 }).keys()]).toEqual(['192.0.2.2']);
    expect(h.pass({ leaving: true, answering: left, won, listedByOthers: new Map(), now: t0 + HANDOVER_TIMEOUT_MS })).toEqual(new Map());
    expect(ended).toEqual([['192.0.2.1', 'n2'], ['192.0.2.2', undefined]]);
    expect([h.size, h.nextDeadline()]).toEqual([0, undefined]);
  });

  it('a successor seen late does not extend the timeout; a node that stops leaving (uncordoned) forgets the handover', () => {
    const h = new Handover();
    h.pass({ leaving: true, answering, won: new Set(), listedByOthers: new Map(), now: 0 });
    h.pass({ leaving: true, answering, won: new Set(), listedByOthers: new Map([['192.0.2.1', 'n2']]), now: HANDOVER_TIMEOUT_MS - 10 });
    expect(h.nextDeadline()).toBe(HANDOVER_TIMEOUT_MS);
    expect(h.pass({ leaving: false, answering, won: new Set(), listedByOthers: new Map(), now: 10 })).toEqual(new Map());
    expect(h.size).toBe(0);
    // Fenced (the speaker passes leaving=false then) or winning it back: nothing is handed over.
    h.pass({ leaving: true, answering, won: new Set(), listedByOthers: new Map(), now: 0 });
    expect(h.pass({ leaving: true, answering, won: new Set(answering.keys()), listedByOthers: new Map(), now: 1 })).toEqual(new Map());
    expect(h.size).toBe(0);
  });
});

describe('the leaving annotation', () => {
  it('is published on the Lease while the speaker is shutting down', async () => {
    const writes: Lease[] = [];
    const fake = {
      path: () => '/apis/coordination.k8s.io/v1/namespaces/ns/leases/speaker-n1',
      request: async (_m: string, _p: string, body: Lease) => {
        writes.push(body);
        return { ...body, metadata: { ...body.metadata, resourceVersion: String(writes.length) } };
      },
      getOrUndefined: async () => undefined,
      create: async (_rt: unknown, body: Lease) => {
        writes.push(body);
        return { ...body, metadata: { ...body.metadata, resourceVersion: '1', uid: 'u1' } };
      },
    } as unknown as KubeClient; // the three methods NodeLease.run uses
    let since: string | undefined;
    const stop = new AbortController();
    const renewed: number[] = [];
    const nl = new NodeLease({
      client: fake,
      namespace: 'ns',
      node: 'n1',
      durationMs: 2000,
      renewIntervalMs: 50,
      log: silentLogger,
      interfaces: () => undefined,
      answering: () => [],
      leavingSince: () => since,
      onFenceChange: () => undefined,
      onRenewed: () => renewed.push(writes.length),
    });
    const running = nl.run(stop.signal);
    const renewals = async (n: number) => {
      const target = renewed.length + n;
      while (renewed.length < target) await new Promise((r) => setTimeout(r, 5));
    };
    await renewals(1);
    expect(writes.at(-1)!.metadata?.annotations?.[LEAVING_ANNOTATION]).toBeUndefined();
    since = '2026-11-30T17:00:00Z';
    nl.renewSoon();
    await renewals(1);
    expect(writes.at(-1)!.metadata?.annotations?.[LEAVING_ANNOTATION]).toBe(since);
    since = undefined;
    await renewals(1);
    expect(writes.at(-1)!.metadata?.annotations?.[LEAVING_ANNOTATION]).toBeUndefined();
    stop.abort();
    await running;
  });
});
