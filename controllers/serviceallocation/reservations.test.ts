import { describe, expect, it } from '@jest/globals';
import { ipClaim, nodePortClaim } from '../../allocators/service/claim-names.js';
import { claimObject } from '../../allocators/service/claim-objects.js';
import { serviceIPRange } from '../../allocators/service/ip-range.js';
import { nodePortRange } from '../../allocators/service/port-range.js';
import type { AllocationConfig } from '../../allocators/service/service-allocation.js';
import type { ServiceClaim } from '../../crds/serviceclaim.js';
import type { KubeClient } from '../runtime/client.js';
import type { Service } from '../../api/wire.js';
import { type ReservationDeps, reservationErrors, validateReservation } from './reservations.js';

const config: AllocationConfig = {
  ipRanges: [serviceIPRange('10.96.0.0/24'), serviceIPRange('10.250.0.0/28')],
  existingIPRanges: [serviceIPRange('10.96.0.0/24'), serviceIPRange('10.250.0.0/28'), serviceIPRange('10.251.0.0/28')],
  families: ['IPv4'],
  nodePortRange: nodePortRange('30000-30999'),
};
const web = { namespace: 'default', name: 'web' };
const reservation = (claim: ServiceClaim): ServiceClaim => ({ ...claim, spec: { ...claim.spec, reserved: true } });
const messages = (claim: ServiceClaim) => reservationErrors(claim, config).map((e) => `${e.field}: ${e.detail}`);

describe('reservationErrors', () => {
  it('accepts a well-formed reservation in range', () => {
    expect(messages(reservation(claimObject(ipClaim('10.96.0.50'), web)))).toEqual([]);
    expect(messages(reservation(claimObject(ipClaim('10.250.0.5'), web)))).toEqual([]);
    expect(messages(reservation(claimObject(nodePortClaim(30500), web)))).toEqual([]);
  });

  it('refuses a name that is no value\'s, and a spec that does not repeat the value', () => {
    const good = reservation(claimObject(ipClaim('10.96.0.50'), web));
    expect(messages({ ...good, metadata: { name: 'my-ip' } })).toEqual([
      'metadata.name: a reservation is named after its value, e.g. ipv4-10-96-0-5, ipv6-fd00-0-0-0-0-0-0-5 or nodeport-30080',
    ]);
    expect(messages({ ...good, spec: { ...good.spec, value: '10.96.0.51', type: 'NodePort' } })).toEqual([
      'spec.type: must be ClusterIP for ipv4-10-96-0-50',
      'spec.value: must be "10.96.0.50", the value ipv4-10-96-0-50 stands for',
    ]);
    expect(messages({ ...good, spec: { ...good.spec, family: 'IPv6' } })).toEqual(['spec.family: must be IPv4 for 10.96.0.50']);
  });

  it('refuses a missing or invalid Service reference', () => {
    const good = reservation(claimObject(nodePortClaim(30500), web));
    expect(messages({ ...good, spec: { ...good.spec, service: { namespace: '', name: '', uid: '' } } })).toEqual([
      'spec.service.namespace: a reservation names the namespace of its Service',
      'spec.service.name: a reservation names its Service',
    ]);
    expect(messages({ ...good, spec: { ...good.spec, service: { namespace: 'Default', name: '1web', uid: '' } } })).toEqual([
      'spec.service.namespace: must be a namespace name (a DNS-1123 label)',
      'spec.service.name: must be a Service name (a DNS-1035 label)',
    ]);
  });

  it('refuses values the cluster would not give: out of range, in a CIDR being deleted, another family', () => {
    expect(messages(reservation(claimObject(nodePortClaim(31000), web)))).toEqual([
      'spec.value: provided port is not in the valid range. The range of valid ports is 30000-30999',
    ]);
    const inNoCIDR = 'spec.value: is in no Service CIDR the cluster allocates from (10.96.0.0/24, 10.250.0.0/28): create a ServiceCIDR for it first';
    expect(messages(reservation(claimObject(ipClaim('10.97.0.5'), web)))).toEqual([inNoCIDR]);
    expect(messages(reservation(claimObject(ipClaim('10.251.0.5'), web)))).toEqual([inNoCIDR]);
    expect(messages(reservation(claimObject(ipClaim('10.96.0.255'), web)))).toEqual([inNoCIDR]); // the /24's broadcast address
    expect(messages(reservation(claimObject(ipClaim('fd00::5'), web)))).toEqual(['spec.value: IPv6 is not configured on this cluster']);
  });
});

describe('validateReservation', () => {
  const other: Service = { metadata: { namespace: 'default', name: 'other' }, spec: { type: 'NodePort', clusterIP: '10.96.0.9', clusterIPs: ['10.96.0.9'], ports: [{ port: 80, nodePort: 30777 }] } };
  const deps = (claims: ServiceClaim[] = [], services: Service[] = []): ReservationDeps => ({
    client: { getOrUndefined: async (_rt: unknown, name: string) => claims.find((c) => c.metadata.name === name) } as unknown as KubeClient,
    config,
    services: () => services,
    ipAddress: (ip) => (ip === '10.96.0.8' ? { metadata: { name: ip }, spec: { parentRef: { resource: 'services', namespace: 'kube-system', name: 'dns' } } } : undefined),
  });
  const review = (object: ServiceClaim, operation: 'CREATE' | 'UPDATE' = 'CREATE', oldObject?: ServiceClaim) => ({
    uid: 'r1',
    operation,
    name: object.metadata.name,
    object,
    ...(oldObject ? { oldObject } : {}),
  });
  const answer = async (...args: Parameters<typeof review>) => (await validateReservation(review(...args), deps(claimsNow, servicesNow))).response;
  let claimsNow: ServiceClaim[] = [];
  let servicesNow: Service[] = [];

  it('allows a free value and a value its own Service holds', async () => {
    claimsNow = [];
    servicesNow = [other];
    expect((await answer(reservation(claimObject(ipClaim('10.96.0.50'), web)))).allowed).toBe(true);
    expect((await answer(reservation(claimObject(nodePortClaim(30777), { namespace: 'default', name: 'other' })))).allowed).toBe(true);
  });

  it('refuses a value another Service holds (its claim, its IPAddress, or the Service itself) with a 422 naming it', async () => {
    claimsNow = [claimObject(ipClaim('10.96.0.60'), { namespace: 'prod', name: 'api', uid: 'u9' })];
    servicesNow = [other];
    const byClaim = await answer(reservation(claimObject(ipClaim('10.96.0.60'), web)));
    expect(byClaim).toMatchObject({ allowed: false, status: { code: 422, reason: 'Invalid' } });
    expect(byClaim.status?.message).toBe(
      'ServiceClaim.switchboard.dev "ipv4-10-96-0-60" is invalid: spec.value: Invalid value: "10.96.0.60": is already allocated to Service prod/api: only a free value or one that Service default/web holds can be reserved for it',
    );
    expect((await answer(reservation(claimObject(ipClaim('10.96.0.8'), web)))).status?.message).toContain('is already allocated to Service kube-system/dns');
    expect((await answer(reservation(claimObject(nodePortClaim(30777), web)))).status?.message).toContain('is already allocated to Service default/other');
  });

  it('lets Switchboard\'s own writes to a reservation through, and checks a change of its Service', async () => {
    claimsNow = [];
    servicesNow = [other];
    const mine = reservation(claimObject(nodePortClaim(30777), { namespace: 'default', name: 'other' }));
    expect((await answer({ ...mine, spec: { ...mine.spec, request: 'r2' } }, 'UPDATE', mine)).allowed).toBe(true);
    const moved = { ...mine, spec: { ...mine.spec, service: { ...web, uid: '' } } };
    expect((await answer(moved, 'UPDATE', mine)).status?.message).toContain('is already allocated to Service default/other');
    // A plain claim made a reservation for the Service holding it.
    expect((await answer(mine, 'UPDATE', claimObject(nodePortClaim(30777), { namespace: 'default', name: 'other', uid: 'u1' }))).allowed).toBe(true);
  });

  it('does not look at claims that are no reservation', async () => {
    expect((await answer(claimObject(ipClaim('10.97.0.5'), web))).allowed).toBe(true);
  });
});
