// The speaker Lease in heartbeat mode (node-lease.ts, heartbeat.ts): idle pace whatever the node answers, the answer
// window confirmed by reads, a fence found by a read obeyed at once, and peers' wait after a fence bounded by the
// answer window the Lease carries.
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { KubeClient } from '../runtime/client.js';
import { microTime } from '../runtime/leader-election.js';
import { silentLogger } from '../runtime/log.js';
import type { Lease } from '../../api/wire.js';
import { LEASE_DURATION_MS_ANNOTATION } from './election.js';
import { ANSWER_WINDOW_ANNOTATION, HEARTBEAT_ANNOTATION } from './heartbeat.js';
import { FENCED_BY_ANNOTATION } from './lease-fence.js';
import { ANSWERING_ANNOTATION, NodeLease, SpeakerLiveness } from './node-lease.js';

const FAST = { durationMs: 1500, renewIntervalMs: 500 };
const IDLE = { idleDurationMs: 30_000, idleRenewIntervalMs: 10_000 };
const WINDOW = 800;

/** A fake API holding one Lease: PUTs (with a resourceVersion check) and GETs, each recorded with the fake clock's time. */
function fakeApi() {
  const calls: { at: number; verb: 'PUT' | 'GET' }[] = [];
  const api = { stored: undefined as Lease | undefined, failing: false, version: 0 };
  const store = (body: Lease): Lease => {
    api.version++;
    api.stored = { ...body, metadata: { ...body.metadata, resourceVersion: String(api.version) } };
    return api.stored;
  };
  const conflict = Object.assign(new Error('conflict'), { status: 409, code: 409, reason: 'Conflict' });
  const client = {
    path: () => '/apis/coordination.k8s.io/v1/namespaces/ns/leases/speaker-n1',
    request: async (_m: string, _p: string, body: Lease) => {
      calls.push({ at: Date.now(), verb: 'PUT' });
      if (api.failing) throw new Error('connection refused');
      if (api.stored && body.metadata?.resourceVersion !== api.stored.metadata?.resourceVersion) throw conflict;
      return store(body);
    },
    getOrUndefined: async () => {
      calls.push({ at: Date.now(), verb: 'GET' });
      if (api.failing) throw new Error('connection refused');
      return api.stored;
    },
    create: async (_rt: unknown, body: Lease) => {
      calls.push({ at: Date.now(), verb: 'PUT' });
      return store(body);
    },
    delete: async () => undefined,
  } as unknown as KubeClient; // the methods NodeLease uses
  /** A peer's fence: the CAS write lease-fence.ts makes. */
  const fence = () => store({ ...api.stored, metadata: { ...api.stored?.metadata, annotations: { ...api.stored?.metadata?.annotations, [FENCED_BY_ANNOTATION]: 'n2 now rv=x' } } });
  return { client, calls, api, fence };
}

const annotation = (l: Lease | undefined, key: string): string | undefined => l?.metadata?.annotations?.[key];

describe('speaker lease in heartbeat mode', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  function start(acked: { value: boolean }, answering: { value: string[] }, members = { value: 3 }) {
    const fake = fakeApi();
    const fences: boolean[] = [];
    const resyncs: number[] = [];
    const nl = new NodeLease({
      client: fake.client,
      namespace: 'ns',
      node: 'n1',
      ...FAST,
      ...IDLE,
      log: silentLogger,
      interfaces: () => [],
      answering: () => answering.value,
      onFenceChange: (f) => fences.push(f),
      resync: async () => void resyncs.push(Date.now()),
      heartbeat: { endpoint: () => '192.0.2.10:7947', answerWindowMs: WINDOW, acked: () => acked.value, members: () => members.value },
    });
    const stop = new AbortController();
    const running = nl.run(stop.signal);
    return { ...fake, nl, fences, resyncs, stop: async () => (stop.abort(), await running) };
  }

  it('renews at the idle pace while answering and confirms by reads, three per answer window', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const acked = { value: true };
    const answering = { value: ['192.0.2.1'] };
    const t = start(acked, answering);
    await jest.advanceTimersByTimeAsync(10);
    expect([annotation(t.api.stored, LEASE_DURATION_MS_ANNOTATION), annotation(t.api.stored, ANSWER_WINDOW_ANNOTATION), annotation(t.api.stored, HEARTBEAT_ANNOTATION), annotation(t.api.stored, ANSWERING_ANNOTATION)]).toEqual(['30000', '800', '192.0.2.10:7947', '["192.0.2.1"]']);
    await jest.advanceTimersByTimeAsync(20_000);
    const puts = t.calls.filter((c) => c.verb === 'PUT').map((c) => c.at - 1_000_000);
    expect(puts).toEqual([0, 10_000, 20_000]);
    const gets = t.calls.filter((c) => c.verb === 'GET');
    // 266 ms apart between renewals: ~37 per 10 s.
    expect(gets.length).toBeGreaterThanOrEqual(70);
    expect(gets.length).toBeLessThanOrEqual(76);
    expect(t.nl.live).toBe(true);

    // Reads failing: the window closes 700 ms after the start of the last good read or renewal, not 29.9 s after the renewal.
    t.api.failing = true;
    const lastGood = Math.max(...t.calls.map((c) => c.at)); // every call so far succeeded
    await jest.advanceTimersByTimeAsync(699 - (Date.now() - lastGood));
    expect(t.nl.live).toBe(true);
    await jest.advanceTimersByTimeAsync(2);
    expect(t.nl.live).toBe(false);
    await t.stop();
  });

  it('answering nothing, it reads nothing and stays a live candidate for the whole idle duration', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const t = start({ value: true }, { value: [] });
    await jest.advanceTimersByTimeAsync(10);
    expect([annotation(t.api.stored, LEASE_DURATION_MS_ANNOTATION), annotation(t.api.stored, ANSWER_WINDOW_ANNOTATION)]).toEqual(['30000', '800']);
    await jest.advanceTimersByTimeAsync(20_000);
    expect(t.calls.map((c) => [c.verb, c.at - 1_000_000])).toEqual([['GET', 0], ['PUT', 0], ['PUT', 10_000], ['PUT', 20_000]]); // the first GET looks for an existing Lease
    t.api.failing = true;
    await jest.advanceTimersByTimeAsync(29_890 - (Date.now() - 1_020_000));
    expect(t.nl.live).toBe(true);
    await jest.advanceTimersByTimeAsync(20);
    expect(t.nl.live).toBe(false);
    await t.stop();
  });

  it('slows the Lease as the ring grows past 100 members: renewals of N nodes seen by N nodes stay linear in N', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const members = { value: 400 };
    const t = start({ value: true }, { value: [] }, members);
    await jest.advanceTimersByTimeAsync(10);
    expect(annotation(t.api.stored, LEASE_DURATION_MS_ANNOTATION)).toBe('120000');
    await jest.advanceTimersByTimeAsync(80_000);
    expect(t.calls.filter((c) => c.verb === 'PUT').map((c) => c.at - 1_000_000)).toEqual([0, 40_000, 80_000]);
    await t.stop();
  });

  it('answers nothing from the read that finds a fence, and clears it with a renewal listing nothing', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const t = start({ value: true }, { value: ['192.0.2.1'] });
    await jest.advanceTimersByTimeAsync(1000);
    expect(t.nl.live).toBe(true);
    t.fence();
    await jest.advanceTimersByTimeAsync(270);
    expect([t.nl.live, [...t.nl.answering]]).toEqual([false, []]);
    await jest.advanceTimersByTimeAsync(1000);
    expect([annotation(t.api.stored, FENCED_BY_ANNOTATION), t.nl.live]).toEqual([undefined, true]);
    // Its API calls worked throughout: its watches are not behind, so nothing is relisted.
    expect(t.resyncs).toEqual([]);
    await t.stop();
  });

  it('resyncs its informers after a fence only when an API call failed, once the API answers again', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const t = start({ value: true }, { value: ['192.0.2.1'] });
    await jest.advanceTimersByTimeAsync(1000);
    t.api.failing = true;
    await jest.advanceTimersByTimeAsync(2000);
    expect([t.nl.live, t.resyncs]).toEqual([false, []]);
    const back = Date.now();
    t.api.failing = false;
    await jest.advanceTimersByTimeAsync(1000);
    expect(t.nl.live).toBe(true);
    expect(t.resyncs).toHaveLength(1);
    expect(t.resyncs[0] - back).toBeLessThan(WINDOW);
    // The renewal after it cleared the failure: a later fence by a peer relists nothing.
    t.fence();
    await jest.advanceTimersByTimeAsync(20_000);
    expect([t.nl.live, t.resyncs.length]).toEqual([true, 1]);
    await t.stop();
  });

  it('renews fast, without the answer window, while its neighbours do not ack it, and back', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const acked = { value: true };
    const t = start(acked, { value: ['192.0.2.1'] });
    await jest.advanceTimersByTimeAsync(10);
    acked.value = false;
    t.nl.renewSoon();
    await jest.advanceTimersByTimeAsync(1);
    expect([annotation(t.api.stored, LEASE_DURATION_MS_ANNOTATION), annotation(t.api.stored, ANSWER_WINDOW_ANNOTATION), annotation(t.api.stored, HEARTBEAT_ANNOTATION)]).toEqual(['1500', undefined, '192.0.2.10:7947']);
    const before = t.calls.length;
    await jest.advanceTimersByTimeAsync(2000);
    expect(t.calls.slice(before).map((c) => c.verb)).toEqual(['PUT', 'PUT', 'PUT', 'PUT']);

    // Back to heartbeat mode: the renewal that says so cuts the fast window (1.4 s) to the answer window (0.7 s).
    acked.value = true;
    t.api.failing = true;
    const switchAt = Date.now();
    t.nl.renewSoon();
    await jest.advanceTimersByTimeAsync(699);
    expect(t.nl.live).toBe(true);
    await jest.advanceTimersByTimeAsync(2);
    expect([t.nl.live, Date.now() - switchAt]).toEqual([false, 701]);
    await t.stop();
  });

  it('peers wait one answer window after they see a fence on a Lease in heartbeat mode, and one duration otherwise', () => {
    const lease = (holder: string, durationMs: number, window: number | undefined, fenced: boolean): Lease => ({
      metadata: {
        name: `speaker-${holder}`,
        annotations: {
          [LEASE_DURATION_MS_ANNOTATION]: String(durationMs),
          [ANSWERING_ANNOTATION]: JSON.stringify([`192.0.2.${holder.length}`]),
          ...(window ? { [ANSWER_WINDOW_ANNOTATION]: String(window) } : {}),
          ...(fenced ? { [FENCED_BY_ANNOTATION]: 'n9 now rv=1' } : {}),
        },
      },
      spec: { holderIdentity: holder, leaseDurationSeconds: Math.ceil(durationMs / 1000), renewTime: microTime(10_000) },
    });
    const l = new SpeakerLiveness();
    l.observe(lease('hb', 30_000, WINDOW, false), 10_000);
    l.observe(lease('fast', 1500, undefined, false), 10_000);
    // Fenced 5 s later: the heartbeat-mode holder's reads stopped confirming when the fence landed.
    l.observe(lease('hb', 30_000, WINDOW, true), 15_000);
    l.observe(lease('fast', 1500, undefined, true), 10_500);
    expect(l.live(10_600)).toEqual(new Set());
    expect(l.answeredByOthers('self', 15_799)).toEqual(new Map([['192.0.2.2', 'hb']]));
    expect(l.answeredByOthers('self', 15_800)).toEqual(new Map());
    // The fast one: one duration after its renewal was seen, not after the fence (its window started at the renewal).
    expect(l.answeredByOthers('self', 11_499).get('192.0.2.4')).toBe('fast');
    expect(l.answeredByOthers('self', 11_500).get('192.0.2.4')).toBeUndefined();
  });
});
