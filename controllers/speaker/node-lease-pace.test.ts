// The speaker Lease's two paces (node-lease.ts): fast while the node answers or is about to, idle otherwise; each
// renewal writes its duration, the fence follows the duration last written, and peers judge each Lease by its own.
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { KubeClient } from '../runtime/client.js';
import { microTime } from '../runtime/leader-election.js';
import { silentLogger } from '../runtime/log.js';
import type { Lease } from '../../api/wire.js';
import { LEASE_DURATION_MS_ANNOTATION } from './election.js';
import { ANSWERING_ANNOTATION, NodeLease, SpeakerLiveness } from './node-lease.js';

const FAST = { durationMs: 1500, renewIntervalMs: 500 };
const IDLE = { idleDurationMs: 30_000, idleRenewIntervalMs: 10_000 };

/** A fake API: records each written Lease with the fake clock's time; `hold` keeps the next write in flight. */
function fakeApi() {
  const writes: { at: number; lease: Lease }[] = [];
  const api = { failing: false, hold: undefined as Promise<void> | undefined };
  const write = async (body: Lease) => {
    if (api.hold) await api.hold;
    if (api.failing) throw new Error('connection refused');
    writes.push({ at: Date.now(), lease: body });
    return { ...body, metadata: { ...body.metadata, resourceVersion: String(writes.length) } };
  };
  const client = {
    path: () => '/apis/coordination.k8s.io/v1/namespaces/ns/leases/speaker-n1',
    request: (_m: string, _p: string, body: Lease) => write(body),
    getOrUndefined: async () => undefined,
    create: (_rt: unknown, body: Lease) => write(body),
    delete: async () => undefined,
  } as unknown as KubeClient; // the methods NodeLease uses
  return { client, writes, api };
}

const durationOf = (l: Lease): string | undefined => l.metadata?.annotations?.[LEASE_DURATION_MS_ANNOTATION];

describe('speaker lease pace', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('renews idle while answering nothing, fast from the renewal that lists an address, and fences by the duration last written', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const { client, writes, api } = fakeApi();
    let answering: string[] = [];
    const fences: boolean[] = [];
    const nl = new NodeLease({ client, namespace: 'ns', node: 'n1', ...FAST, ...IDLE, log: silentLogger, interfaces: () => [], answering: () => answering, onFenceChange: (f) => fences.push(f) });
    const stop = new AbortController();
    const running = nl.run(stop.signal);
    await jest.advanceTimersByTimeAsync(10);
    expect(writes.map((w) => [durationOf(w.lease), w.lease.spec?.leaseDurationSeconds])).toEqual([['30000', 30]]);
    // Idle: one renewal per 10 s, not per 500 ms.
    await jest.advanceTimersByTimeAsync(29_000);
    expect(writes.map((w) => w.at - 1_000_000)).toEqual([0, 10_000, 20_000]);

    // Elected: the next renewal lists the address, at once, with the fast duration; then every 500 ms.
    answering = ['192.0.2.1'];
    nl.renewSoon();
    await jest.advanceTimersByTimeAsync(1);
    expect(writes.at(-1)!.lease.metadata?.annotations?.[ANSWERING_ANNOTATION]).toBe('["192.0.2.1"]');
    expect([durationOf(writes.at(-1)!.lease), writes.at(-1)!.lease.spec?.leaseDurationSeconds]).toEqual(['1500', 2]);
    const fastFrom = writes.length;
    await jest.advanceTimersByTimeAsync(2000);
    expect(writes.length - fastFrom).toBe(4);
    expect(writes.slice(fastFrom).every((w) => durationOf(w.lease) === '1500')).toBe(true);

    // Answering, the fence is the fast one: 1.4 s after the start of the last renewal, though idle renewals gave 29.9 s.
    api.failing = true;
    const lastGood = writes.at(-1)!.at;
    await jest.advanceTimersByTimeAsync(1399 - (Date.now() - lastGood));
    expect(nl.live).toBe(true);
    await jest.advanceTimersByTimeAsync(2);
    expect([nl.live, fences]).toEqual([false, [false, true]]);

    // Back, answering nothing: idle again, and an idle fence lasts 29.9 s.
    api.failing = false;
    answering = [];
    await jest.advanceTimersByTimeAsync(600);
    expect([nl.live, durationOf(writes.at(-1)!.lease), writes.at(-1)!.lease.metadata?.annotations?.[ANSWERING_ANNOTATION]]).toEqual([true, '30000', '[]']);
    api.failing = true;
    const idleGood = writes.at(-1)!.at;
    await jest.advanceTimersByTimeAsync(29_899 - (Date.now() - idleGood));
    expect(nl.live).toBe(true);
    await jest.advanceTimersByTimeAsync(2);
    expect(nl.live).toBe(false);
    stop.abort();
    await running;
  });

  it('does not lose a change of what to publish that comes while a renewal is in flight', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const { client, writes, api } = fakeApi();
    let answering: string[] = [];
    const nl = new NodeLease({ client, namespace: 'ns', node: 'n1', ...FAST, ...IDLE, log: silentLogger, interfaces: () => [], answering: () => answering, onFenceChange: () => {} });
    const stop = new AbortController();
    const running = nl.run(stop.signal);
    await jest.advanceTimersByTimeAsync(10);
    let release = (): void => {};
    api.hold = new Promise<void>((r) => (release = r));
    await jest.advanceTimersByTimeAsync(10_000); // the second idle renewal is in flight
    expect(writes).toHaveLength(1);
    answering = ['192.0.2.1'];
    nl.renewSoon(); // the renewal in flight read [] before this
    api.hold = undefined;
    release();
    await jest.advanceTimersByTimeAsync(1);
    expect(writes.map((w) => w.lease.metadata?.annotations?.[ANSWERING_ANNOTATION])).toEqual(['[]', '[]', '["192.0.2.1"]']);
    expect(writes.at(-1)!.at - writes[1].at).toBeLessThan(10);
    stop.abort();
    await running;
  });

  it('peers judge each Lease by the duration it carries', () => {
    const lease = (holder: string, durationMs: number, renewMs: number): Lease => ({
      metadata: { name: `speaker-${holder}`, annotations: { [LEASE_DURATION_MS_ANNOTATION]: String(durationMs) } },
      spec: { holderIdentity: holder, leaseDurationSeconds: Math.ceil(durationMs / 1000), renewTime: microTime(renewMs) },
    });
    const l = new SpeakerLiveness();
    l.observe(lease('answering', 1500, 10_000), 10_000);
    l.observe(lease('idle', 30_000, 10_000), 10_000);
    expect(l.live(11_499)).toEqual(new Set(['answering', 'idle']));
    expect(l.live(11_500)).toEqual(new Set(['idle']));
    expect(l.nextExpiry(11_500)).toBe(40_000);
    expect(l.live(40_000)).toEqual(new Set());
  });
});
