import { describe, expect, it } from '@jest/globals';
import { claimObject } from '../../allocators/service/claim-objects.js';
import type { ServiceClaim } from '../../crds/serviceclaim.js';
import { Store } from '../runtime/store.js';
import { UnconfirmedReservations, type ReservationAdmission, type ReservationTicket } from './unconfirmed-reservations.js';

const claim = (port: number, namespace: string, uid = ''): ServiceClaim => claimObject({ kind: 'nodePort', port }, { namespace, name: `svc-${port}`, uid });

function ticketOf(admission: ReservationAdmission): ReservationTicket {
  if ('refusal' in admission) throw new Error(`refused: ${admission.refusal}`);
  return admission.ticket;
}

describe('the bound on unconfirmed reservations', () => {
  it('refuses a namespace at its bound and the cluster at the total, counting the cache', () => {
    const store = new Store<ServiceClaim>();
    const reservations = new UnconfirmedReservations(store, { total: 5, perNamespace: 3 });
    for (const port of [30000, 30001, 30002]) store.upsert(claim(port, 'flood'));
    store.upsert(claim(30003, 'web', 'confirmed-uid')); // confirmed: never counts
    expect(reservations.count('flood')).toBe(3);
    expect(reservations.admit('flood', 1)).toEqual({
      refusal: '3 ClusterIPs/NodePorts reserved for Services of namespace "flood" are not confirmed yet (at most 3): retry in a few seconds',
    });
    ticketOf(reservations.admit('web', 1)).done([]);
    for (const port of [30004, 30005]) store.upsert(claim(port, 'other'));
    expect(reservations.count()).toBe(5);
    expect(reservations.admit('web', 1)).toEqual({ refusal: '5 ClusterIPs/NodePorts reserved cluster-wide are not confirmed yet (at most 5): retry in a few seconds' });
    // Confirming one (the validating webhook wrote the Service's uid) makes room again.
    store.upsert(claim(30000, 'flood', 'svc-uid'));
    expect(reservations.count('flood')).toBe(2);
    expect('ticket' in reservations.admit('flood', 1)).toBe(true);
  });

  it('counts a burst before the cache shows it: requests in progress, then claims created but not yet watched', () => {
    const store = new Store<ServiceClaim>();
    const reservations = new UnconfirmedReservations(store, { total: 0, perNamespace: 4 });
    // Four forged requests arrive at once, each about to reserve one value: the fifth is refused before any write.
    const tickets = [0, 1, 2, 3].map(() => ticketOf(reservations.admit('flood', 1)));
    expect('refusal' in reservations.admit('flood', 1)).toBe(true);
    // They created their claims; the watch has not delivered them yet: they still count.
    tickets.forEach((ticket, i) => ticket.done([`nodeport-${30000 + i}`]));
    tickets[0].done(['nodeport-39999']); // a second hand-in changes nothing
    expect(reservations.count('flood')).toBe(4);
    // The cache shows them (counted there, once) and then their confirmation.
    for (let i = 0; i < 4; i++) {
      const seen = claim(30000 + i, 'flood');
      store.upsert(seen);
      reservations.observed(seen);
    }
    expect(reservations.count('flood')).toBe(4);
    store.upsert(claim(30000, 'flood', 'svc-uid'));
    expect(reservations.count('flood')).toBe(3);
    expect('ticket' in reservations.admit('flood', 1)).toBe(true);
  });

  it('hands back what a request did not create, and forgets created claims the cache never shows', () => {
    let now = 0;
    const store = new Store<ServiceClaim>();
    const reservations = new UnconfirmedReservations(store, { total: 2, perNamespace: 0 }, () => now);
    ticketOf(reservations.admit('a', 2)).done([]); // denied, took nothing
    expect(reservations.count()).toBe(0);
    ticketOf(reservations.admit('a', 2)).done(['nodeport-30000', 'nodeport-30001']);
    expect('refusal' in reservations.admit('b', 1)).toBe(true);
    // Freed before this replica's watch saw them: after a minute they stop counting.
    now += 61_000;
    expect(reservations.count()).toBe(0);
    expect('ticket' in reservations.admit('b', 1)).toBe(true);
  });

  it('needs no room for a request that reserves nothing (dry-run, no new values)', () => {
    const store = new Store<ServiceClaim>();
    const reservations = new UnconfirmedReservations(store, { total: 1, perNamespace: 1 });
    store.upsert(claim(30000, 'a'));
    expect('ticket' in reservations.admit('a', 0)).toBe(true);
    expect('refusal' in reservations.admit('a', 1)).toBe(true);
  });
});
