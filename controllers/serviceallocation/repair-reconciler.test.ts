import { describe, expect, it } from '@jest/globals';
import { ipClaim, nodePortClaim } from '../../allocators/service/claim-names.js';
import { claimObject } from '../../allocators/service/claim-objects.js';
import { serviceIPRange } from '../../allocators/service/ip-range.js';
import { nodePortRange } from '../../allocators/service/port-range.js';
import type { AllocationConfig } from '../../allocators/service/service-allocation.js';
import type { ServiceClaim } from '../../crds/serviceclaim.js';
import type { Service } from '../../api/wire.js';
import { repairService } from './repair-reconciler.js';

const config: AllocationConfig = { ipRanges: [serviceIPRange('10.96.0.0/24')], nodePortRange: nodePortRange('30000-30099') };
const svc = (name: string, ip: string, nodePort?: number): Service => ({
  metadata: { namespace: 'default', name, uid: `uid-${name}` },
  spec: { type: nodePort ? 'NodePort' : 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ports: [{ port: 80, ...(nodePort ? { nodePort } : {}) }] },
});

function lookups(services: Service[], claims: ServiceClaim[]) {
  return {
    claim: (name: string) => claims.find((c) => c.metadata.name === name),
    service: (key: string) => services.find((s) => `${s.metadata?.namespace}/${s.metadata?.name}` === key),
  };
}

describe('repairService', () => {
  it('adopts the values nobody claims', () => {
    const web = svc('web', '10.96.0.10', 30080);
    expect(repairService(web, config, lookups([web], []))).toEqual({ adopt: [ipClaim('10.96.0.10'), nodePortClaim(30080)], events: [] });
  });

  it('is quiet when the claims name the Service', () => {
    const web = svc('web', '10.96.0.10');
    const claims = [claimObject(ipClaim('10.96.0.10'), { namespace: 'default', name: 'web' })];
    expect(repairService(web, config, lookups([web], claims))).toEqual({ adopt: [], events: [] });
  });

  it('reports a duplicate on the Service that does not hold the claim, with upstream\'s reason and text', () => {
    const first = svc('first', '10.96.0.10', 30080);
    const second = svc('second', '10.96.0.10', 30080);
    const claims = [ipClaim('10.96.0.10'), nodePortClaim(30080)].map((v) => claimObject(v, { namespace: 'default', name: 'first', uid: 'uid-first' }));
    expect(repairService(second, config, lookups([first, second], claims)).events).toEqual([
      { reason: 'ClusterIPAlreadyAllocated', message: 'Cluster IP [IPv4]:10.96.0.10 was assigned to multiple services; please recreate service' },
      { reason: 'PortAlreadyAllocated', message: 'Port 30080 was assigned to multiple services; please recreate service' },
    ]);
    expect(repairService(first, config, lookups([first, second], claims)).events).toEqual([]);
  });

  it('says nothing about a claim whose Service does not hold the value (stale or in flight)', () => {
    const web = svc('web', '10.96.0.10');
    const claims = [claimObject(ipClaim('10.96.0.10'), { namespace: 'default', name: 'other', uid: '' })];
    expect(repairService(web, config, lookups([web], claims))).toEqual({ adopt: [], events: [] });
  });

  it('reports values outside the ranges and claims nothing for them', () => {
    const web = svc('web', '10.97.0.10', 31000);
    expect(repairService(web, config, lookups([web], []))).toEqual({
      adopt: [],
      events: [
        { reason: 'ClusterIPOutOfRange', message: 'Cluster IP [IPv4]:10.97.0.10 is not within the service CIDR 10.96.0.0/24; please recreate service' },
        { reason: 'PortOutOfRange', message: 'Port 31000 is not within the port range 30000-30099; please recreate service' },
      ],
    });
    const v6 = svc('v6', 'fd00::10');
    expect(repairService(v6, config, lookups([v6], [])).events).toEqual([
      { reason: 'ClusterIPNotValid', message: 'Cluster IP fd00::10(IPv6) is of ip family that is no longer configured on cluster; please recreate service' },
    ]);
  });

  it('leaves headless and ExternalName Services alone', () => {
    const headless: Service = { metadata: { namespace: 'default', name: 'h' }, spec: { clusterIP: 'None', clusterIPs: ['None'] } };
    const external: Service = { metadata: { namespace: 'default', name: 'e' }, spec: { type: 'ExternalName', externalName: 'example.com' } };
    for (const s of [headless, external]) expect(repairService(s, config, lookups([s], []))).toEqual({ adopt: [], events: [] });
  });
});
