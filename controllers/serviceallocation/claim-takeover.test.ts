import { describe, expect, it } from '@jest/globals';
import { nodePortClaim } from '../../allocators/service/claim-names.js';
import { claimObject } from '../../allocators/service/claim-objects.js';
import type { ServiceClaim } from '../../crds/serviceclaim.js';
import type { Service } from '../../api/wire.js';
import { type TakeoverStage, decideTakeover } from './claim-takeover.js';

/** `web` as stored: a NodePort Service holding 30050 unless it became type ClusterIP. */
const web = (uid: string, type: 'NodePort' | 'ClusterIP' = 'NodePort'): Service => ({
  metadata: { namespace: 'default', name: 'web', uid },
  spec: { type, clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ port: 80, ...(type === 'NodePort' ? { nodePort: 30050 } : {}) }] },
});

/** The claim of nodePort 30050 for `web` (reserved when uid is empty), at generation 2. */
function claim(uid: string, status?: ServiceClaim['status']): ServiceClaim {
  const made = claimObject(nodePortClaim(30050), { namespace: 'default', name: 'web', uid }, 'req-1');
  return { ...made, metadata: { ...made.metadata, generation: 2, resourceVersion: '7' }, ...(status ? { status } : {}) };
}

/** The controller saw the live Service `uid` holding it, at `generation` (2: nothing confirmed it since). */
const bound = (uid: string, generation = 2): ServiceClaim['status'] => ({ phase: 'Bound', boundUID: uid, observedGeneration: generation });

const atBoth = (input: { claim: ServiceClaim; holder: Service | undefined }) =>
  (['reserve', 'confirm'] as TakeoverStage[]).map((stage) => decideTakeover({ ...input, stage }));

describe('decideTakeover', () => {
  it('leaves the value to a holder that holds it, whatever uid the claim names', () => {
    expect(atBoth({ claim: claim('u1', bound('u1')), holder: web('u1') })).toEqual([{ kind: 'refuse', why: 'held' }, { kind: 'refuse', why: 'held' }]);
    // Re-created under the same name with the value: the controller moves the claim to it.
    expect(atBoth({ claim: claim('u1', bound('u1')), holder: web('u2') })).toEqual([{ kind: 'refuse', why: 'held' }, { kind: 'refuse', why: 'held' }]);
  });

  it('never takes a reservation in flight, even when its Service does not exist (yet)', () => {
    for (const holder of [undefined, web('u1'), web('u1', 'ClusterIP')]) {
      expect(atBoth({ claim: claim(''), holder })).toEqual([{ kind: 'refuse', why: 'reserved' }, { kind: 'refuse', why: 'reserved' }]);
    }
    // A reservation of a re-created Service keeps the old incarnation's status: still not taken.
    expect(atBoth({ claim: claim('', bound('u1')), holder: undefined })[0]).toEqual({ kind: 'refuse', why: 'reserved' });
  });

  it('takes at once the claim of a holder seen holding it and gone now', () => {
    expect(decideTakeover({ claim: claim('u1', bound('u1')), holder: undefined, stage: 'reserve' })).toEqual({ kind: 'take', reason: 'holder-deleted' });
    // Re-created under the same name (another uid) without the value: the uid seen is gone all the same.
    expect(decideTakeover({ claim: claim('u1', bound('u1')), holder: web('u2', 'ClusterIP'), stage: 'reserve' })).toEqual({ kind: 'take', reason: 'holder-deleted' });
  });

  it('takes at once the settled claim of a holder that changed type', () => {
    expect(decideTakeover({ claim: claim('u1', bound('u1')), holder: web('u1', 'ClusterIP'), stage: 'reserve' })).toEqual({ kind: 'take', reason: 'holder-released' });
  });

  it('contests, and does not take, a claim whose confirming request may still be writing its Service', () => {
    const unsure: [string, ServiceClaim, Service | undefined][] = [
      // Confirmed by a create never seen written: created and deleted since, or not written yet.
      ['gone, never seen', claim('u1'), undefined],
      ['re-created, old uid never seen', claim('u1'), web('u2', 'ClusterIP')],
      // Bound to an earlier uid, confirmed since by a create of a new incarnation that may not be written yet.
      ['gone, confirmed since for a new uid', claim('u2', bound('u1')), undefined],
      // Confirmed since the controller's check (generation 3): an update adding the value back, not written yet.
      ['type changed, confirmed since', claim('u1', bound('u1', 1)), web('u1', 'ClusterIP')],
      ['type changed, never bound', claim('u1'), web('u1', 'ClusterIP')],
    ];
    for (const [why, unsettled, holder] of unsure) {
      expect({ why, decision: decideTakeover({ claim: unsettled, holder, stage: 'reserve' }) }).toEqual({ why, decision: { kind: 'contest' } });
      // Once kube-apiserver's allocator has granted the value to the requester, nobody else holds or writes it.
      expect({ why, decision: decideTakeover({ claim: unsettled, holder, stage: 'confirm' }) }).toEqual({ why, decision: { kind: 'take', reason: 'granted-by-api-server' } });
    }
  });
});

describe('decideTakeover on a reservation (spec.reserved)', () => {
  it('never takes it, at either stage, whatever its Service does', () => {
    const reserved = (uid: string, status?: ServiceClaim['status']): ServiceClaim => {
      const made = claim(uid, status);
      return { ...made, spec: { ...made.spec, reserved: true } };
    };
    const refused = { kind: 'refuse', why: 'reserved' };
    // Its Service deleted (a plain claim would be taken at once), or let the value go (settled), or never existed.
    expect(atBoth({ claim: reserved('u1', bound('u1')), holder: undefined })).toEqual([refused, refused]);
    expect(atBoth({ claim: reserved('u1', bound('u1')), holder: web('u1', 'ClusterIP') })).toEqual([refused, refused]);
    expect(atBoth({ claim: reserved(''), holder: undefined })).toEqual([refused, refused]);
    expect(decideTakeover({ claim: claim('u1', bound('u1')), holder: undefined, stage: 'reserve' })).toEqual({ kind: 'take', reason: 'holder-deleted' });
  });
});
