import { describe, expect, it } from '@jest/globals';
import { ipClaim, nodePortClaim } from '../../allocators/service/claim-names.js';
import { claimObject } from '../../allocators/service/claim-objects.js';
import type { ServiceClaim } from '../../crds/serviceclaim.js';
import type { Service } from '../../api/wire.js';
import { type ClaimReconcileInput, keepLastWriteTime, reconcileClaim, serverAgeMs } from './claim-reconciler.js';

const timings = { graceMs: 2_000, commitWindowMs: 40_000 };
const web = (uid: string, spec: Service['spec'] = { clusterIPs: ['10.96.0.10'], clusterIP: '10.96.0.10', ports: [{ port: 80 }] }): Service => ({
  metadata: { namespace: 'default', name: 'web', uid },
  spec,
});

function claim(uid: string, status?: ServiceClaim['status'], generation = 2): ServiceClaim {
  const made = claimObject(ipClaim('10.96.0.10'), { namespace: 'default', name: 'web', uid }, 'req-1');
  return { ...made, metadata: { ...made.metadata, generation, resourceVersion: '7' }, ...(status ? { status } : {}) };
}

const bound = (uid: string, generation = 2): ServiceClaim['status'] => ({ phase: 'Bound', boundUID: uid, observedGeneration: generation });
const decide = (input: Partial<ClaimReconcileInput>) => reconcileClaim({ claim: undefined, service: undefined, unchangedForMs: 0, confirmedUIDSeenStored: false, timings, ...input });

describe('reconcileClaim', () => {
  it('binds a claim its Service holds, and then leaves it alone', () => {
    expect(decide({ claim: claim('u1'), service: web('u1') })).toEqual({ kind: 'bind', uid: 'u1', setUID: false, setPhase: true });
    expect(decide({ claim: claim('u1', bound('u1')), service: web('u1') })).toEqual({ kind: 'none' });
    // A confirmation since the last check (the generation moved) needs settling again.
    expect(decide({ claim: claim('u1', bound('u1', 1)), service: web('u1') })).toMatchObject({ kind: 'bind', setPhase: true });
  });

  it('adopts the claim for a re-created Service of the same name, but not while a request may be confirming it', () => {
    expect(decide({ claim: claim('old', bound('old')), service: web('new') })).toEqual({ kind: 'bind', uid: 'new', setUID: true, setPhase: true });
    expect(decide({ claim: claim(''), service: web('new'), unchangedForMs: 500 })).toEqual({ kind: 'wait', afterMs: 1_500 });
    expect(decide({ claim: claim(''), service: web('new'), unchangedForMs: 2_000 })).toMatchObject({ kind: 'bind', setUID: true });
  });

  it('frees a reservation whose Service never came after the grace period', () => {
    expect(decide({ claim: claim(''), unchangedForMs: 1_999 })).toEqual({ kind: 'wait', afterMs: 1 });
    expect(decide({ claim: claim(''), unchangedForMs: 2_000 })).toEqual({ kind: 'free', reason: 'never-confirmed' });
  });

  it('waits out the API server bound for a confirmed claim whose Service was never seen', () => {
    expect(decide({ claim: claim('u1'), unchangedForMs: 39_000 })).toEqual({ kind: 'wait', afterMs: 1_000 });
    expect(decide({ claim: claim('u1'), unchangedForMs: 40_000 })).toEqual({ kind: 'free', reason: 'service-gone' });
  });

  it('frees at once the claim of a deleted Service it had seen', () => {
    expect(decide({ claim: claim('u1', bound('u1')), unchangedForMs: 0 })).toEqual({ kind: 'free', reason: 'service-gone' });
    // Same name, another incarnation that does not hold the value: the old one is gone for good.
    expect(decide({ claim: claim('u1', bound('u1')), service: web('u2', { ports: [{ port: 80 }] }) })).toEqual({ kind: 'free', reason: 'service-gone' });
    // Never bound (no leader while it lived), but its watch saw it stored: deleted, not in flight.
    expect(decide({ claim: claim('u1'), unchangedForMs: 0, confirmedUIDSeenStored: true })).toEqual({ kind: 'free', reason: 'service-gone' });
  });

  it('releases a value the Service let go of at once when settled, after the bound when not', () => {
    const clusterIPOnly = web('u1', { clusterIPs: ['10.96.0.11'], clusterIP: '10.96.0.11', ports: [{ port: 80 }] });
    expect(decide({ claim: claim('u1', bound('u1')), service: clusterIPOnly })).toEqual({ kind: 'free', reason: 'released' });
    expect(decide({ claim: claim('u1', bound('u1', 1)), service: clusterIPOnly, unchangedForMs: 10_000 })).toEqual({ kind: 'wait', afterMs: 30_000 });
  });

  it('keeps the values of a Service being deleted until it is gone, as upstream', () => {
    const deleting = { ...web('u1'), metadata: { ...web('u1').metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
    expect(decide({ claim: claim('u1', bound('u1')), service: deleting })).toEqual({ kind: 'none' });
  });

  it('ignores claims being deleted and names that are not claim names', () => {
    const deleting = claim('u1');
    deleting.metadata.deletionTimestamp = '2026-01-01T00:00:00Z';
    expect(decide({ claim: deleting })).toEqual({ kind: 'none' });
    expect(decide({ claim: { ...claim('u1'), metadata: { name: 'not-a-claim' } } })).toEqual({ kind: 'none' });
  });

  it('matches nodePort claims against ports and the health check port', () => {
    const made = claimObject(nodePortClaim(30080), { namespace: 'default', name: 'web', uid: 'u1' });
    const lb = web('u1', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 30080, ports: [{ port: 80, nodePort: 30081 }] });
    expect(decide({ claim: made, service: lb })).toMatchObject({ kind: 'bind' });
  });
});

describe('serverAgeMs', () => {
  const at = (created: string, ...writes: string[]): ServiceClaim => {
    const c = claim('u1');
    return { ...c, metadata: { ...c.metadata, creationTimestamp: created, managedFields: writes.map((time) => ({ manager: 'switchboard', operation: 'Update', time })) } };
  };
  const now = Date.parse('2026-11-30T10:00:40Z');

  it('counts from the last write the API server recorded, a second late (its times are truncated)', () => {
    expect(serverAgeMs(at('2026-11-30T10:00:00Z'), now)).toBe(39_000);
    expect(serverAgeMs(at('2026-11-30T10:00:00Z', '2026-11-30T10:00:05Z', '2026-11-30T10:00:20Z'), now)).toBe(19_000);
  });

  it('still reads the last write once the claims informer kept only its time', () => {
    const cached = keepLastWriteTime(at('2026-11-30T10:00:00Z', '2026-11-30T10:00:20Z', '2026-11-30T10:00:05Z'));
    expect(cached.metadata.managedFields).toEqual([{ time: '2026-11-30T10:00:20Z' }]);
    expect(serverAgeMs(cached, now)).toBe(19_000);
    expect(keepLastWriteTime(at('2026-11-30T10:00:00Z')).metadata.managedFields).toBeUndefined();
  });

  it('is 0 without the server clock, without any time, or for a write in the last second', () => {
    expect(serverAgeMs(at('2026-11-30T10:00:00Z'), undefined)).toBe(0);
    expect(serverAgeMs(at(''), now)).toBe(0);
    expect(serverAgeMs(at('2026-11-30T10:00:40Z'), now)).toBe(0);
  });
});

describe('reconcileClaim on a reservation (spec.reserved)', () => {
  const reserved = (uid: string, status?: ServiceClaim['status']): ServiceClaim => {
    const made = claim(uid, status);
    return { ...made, spec: { ...made.spec, reserved: true } };
  };

  it('binds it while its Service holds the value', () => {
    expect(decide({ claim: reserved('u1'), service: web('u1') })).toEqual({ kind: 'bind', uid: 'u1', setUID: false, setPhase: true });
    expect(decide({ claim: reserved('u1', bound('u1')), service: web('u2'), unchangedForMs: 5_000 })).toMatchObject({ kind: 'bind', uid: 'u2', setUID: true });
  });

  it('never frees it: not when its Service is deleted, lets the value go, or never came', () => {
    const long = 10 * 60_000;
    expect(decide({ claim: reserved('u1', bound('u1')), service: undefined, unchangedForMs: long, confirmedUIDSeenStored: true })).toEqual({ kind: 'none' });
    expect(decide({ claim: reserved('u1', bound('u1')), service: web('u1', { clusterIPs: ['10.96.0.11'], clusterIP: '10.96.0.11' }), unchangedForMs: long })).toEqual({ kind: 'none' });
    expect(decide({ claim: reserved(''), service: undefined, unchangedForMs: long })).toEqual({ kind: 'none' });
    // The same claims without the mark are freed.
    expect(decide({ claim: claim('u1', bound('u1')), service: undefined, unchangedForMs: long, confirmedUIDSeenStored: true })).toMatchObject({ kind: 'free' });
  });
});
