import { describe, expect, it } from '@jest/globals';
import { claimObject } from '../../allocators/service/claim-objects.js';
import { CLAIM_PHASE_BOUND, type ServiceClaim } from '../../crds/serviceclaim.js';
import { Store } from '../runtime/store.js';
import { PendingClaims, type ClaimAdmission, type ClaimTicket, type PendingClaimLimits } from './pending-claims.js';

/** Reserved (no uid), or confirmed for `uid` and not yet seen held. */
const claim = (port: number, namespace: string, uid = ''): ServiceClaim => claimObject({ kind: 'nodePort', port }, { namespace, name: `svc-${port}`, uid });
/** Settled: the controller saw its Service holding it. */
const bound = (port: number, namespace: string): ServiceClaim => ({ ...claim(port, namespace, `uid-${port}`), status: { phase: CLAIM_PHASE_BOUND, boundUID: `uid-${port}` } });

function ticketOf(admission: ClaimAdmission): ClaimTicket {
  if ('refusal' in admission) throw new Error(`refused: ${admission.refusal}`);
  return admission.ticket;
}

/** The bound over a claims cache; `see` is the informer delivering a claim, `held` the claims a cached Service holds. */
function setup(limits: PendingClaimLimits, now?: () => number) {
  const store = new Store<ServiceClaim>();
  const held = new Set<string>();
  const pending = new PendingClaims({ claims: store, heldByService: (c) => held.has(c.metadata.name ?? '') }, limits, now);
  const see = (c: ServiceClaim) => {
    store.upsert(c);
    pending.update(c);
  };
  return { store, held, pending, see };
}

describe('the bound on pending claims', () => {
  it('refuses a namespace at its bound and the cluster at the total, counting the cache', () => {
    const { pending, see } = setup({ total: 5, perNamespace: 3 });
    for (const port of [30000, 30001, 30002]) see(claim(port, 'flood'));
    see(bound(30003, 'web')); // settled: never counts
    expect(pending.count('flood')).toBe(3);
    expect(pending.admit('flood', 1)).toEqual({
      refusal: '3 ClusterIPs/NodePorts claimed for Services of namespace "flood" are not settled yet (at most 3): retry in a few seconds',
    });
    ticketOf(pending.admit('web', 1)).done([]);
    for (const port of [30004, 30005]) see(claim(port, 'other'));
    expect(pending.count()).toBe(5);
    expect(pending.admit('web', 1)).toEqual({ refusal: '5 ClusterIPs/NodePorts claimed cluster-wide are not settled yet (at most 5): retry in a few seconds' });
    // Confirmed (a uid, as a forged validating review can write) still counts; Bound by the controller, it stops.
    see(claim(30000, 'flood', 'svc-uid'));
    expect(pending.count('flood')).toBe(3);
    see(bound(30000, 'flood'));
    expect(pending.count('flood')).toBe(2);
    expect('ticket' in pending.admit('flood', 1)).toBe(true);
  });

  it('stops counting a confirmed claim once the Service cache shows its Service holding it, long before it is Bound', () => {
    const { held, pending, see } = setup({ total: 0, perNamespace: 2 });
    const confirmed = claim(30000, 'web', 'uid-a');
    see(confirmed);
    see(claim(30001, 'web', 'uid-b'));
    expect('refusal' in pending.admit('web', 1)).toBe(true);
    held.add('nodeport-30000');
    pending.update(confirmed); // the Service's event
    expect(pending.count('web')).toBe(1);
    expect('ticket' in pending.admit('web', 1)).toBe(true);
  });

  it('keeps a claim settled once its Service was seen holding it, though the Service is deleted; a new holder settles anew', () => {
    const { held, pending, see } = setup({ total: 0, perNamespace: 1 });
    const confirmed = claim(30000, 'web', 'uid-a');
    held.add('nodeport-30000');
    see(confirmed);
    expect(pending.count('web')).toBe(0);
    held.delete('nodeport-30000');
    pending.update(confirmed); // the Service's delete event: the controller frees the claim later
    expect(pending.count('web')).toBe(0);
    // Taken over for another Service (or confirmed by a forged review) that no cached Service holds: counts.
    see(claim(30000, 'web', 'uid-b'));
    expect(pending.count('web')).toBe(1);
    expect('refusal' in pending.admit('web', 1)).toBe(true);
  });

  it('settles a confirmation that arrives after its Service was created and deleted, not one naming values the Service never held', () => {
    let now = 0;
    const { pending, see } = setup({ total: 0, perNamespace: 0 }, () => now);
    // The Service's add and delete events came first; the claim still showed a reservation then.
    see(claim(30000, 'web'));
    pending.serviceStored('uid-a', ['nodeport-30000']);
    expect(pending.count('web')).toBe(1);
    see(claim(30000, 'web', 'uid-a'));
    expect(pending.count('web')).toBe(0);
    // A forged confirmation naming the same Service's uid for a value it never held.
    see(claim(30001, 'web', 'uid-a'));
    expect(pending.count('web')).toBe(1);
    // What stored Services held is forgotten after a while.
    now = 10 * 60_000;
    pending.serviceStored('uid-c', []);
    see(claim(30002, 'web'));
    pending.remove(claim(30000, 'web', 'uid-a'));
    see(claim(30000, 'web', 'uid-a'));
    expect(pending.count('web')).toBe(3);
  });

  it('counts a burst before the cache shows it: requests in progress, then claims created but not yet watched', () => {
    const { pending, see } = setup({ total: 0, perNamespace: 4 });
    // Four forged requests arrive at once, each about to reserve one value: the fifth is refused before any write.
    const tickets = [0, 1, 2, 3].map(() => ticketOf(pending.admit('flood', 1)));
    expect('refusal' in pending.admit('flood', 1)).toBe(true);
    // They created their claims; the watch has not delivered them yet: they still count.
    tickets.forEach((ticket, i) => ticket.done([`nodeport-${30000 + i}`]));
    tickets[0].done(['nodeport-39999']); // a second hand-in changes nothing
    expect(pending.count('flood')).toBe(4);
    // The cache shows them (counted there, once), and then one of them settled.
    for (let i = 0; i < 4; i++) see(claim(30000 + i, 'flood'));
    expect(pending.count('flood')).toBe(4);
    see(bound(30000, 'flood'));
    expect(pending.count('flood')).toBe(3);
    expect('ticket' in pending.admit('flood', 1)).toBe(true);
  });

  it('hands back what a request did not create, and forgets created claims the cache never shows', () => {
    let now = 0;
    const { pending } = setup({ total: 2, perNamespace: 0 }, () => now);
    ticketOf(pending.admit('a', 2)).done([]); // denied, took nothing
    expect(pending.count()).toBe(0);
    ticketOf(pending.admit('a', 2)).done(['nodeport-30000', 'nodeport-30001']);
    expect('refusal' in pending.admit('b', 1)).toBe(true);
    // Freed before this replica's watch saw them: after a minute they stop counting.
    now += 61_000;
    expect(pending.count()).toBe(0);
    expect('ticket' in pending.admit('b', 1)).toBe(true);
  });

  it('needs no room for a request that claims nothing (dry-run, no new values), and forgets deleted claims', () => {
    const { store, pending, see } = setup({ total: 1, perNamespace: 1 });
    const reserved = claim(30000, 'a');
    see(reserved);
    expect('ticket' in pending.admit('a', 0)).toBe(true);
    expect('refusal' in pending.admit('a', 1)).toBe(true);
    store.remove('nodeport-30000');
    pending.remove(reserved);
    expect('ticket' in pending.admit('a', 1)).toBe(true);
  });
});
