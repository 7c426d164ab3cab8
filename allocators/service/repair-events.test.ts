import { describe, expect, it } from '@jest/globals';
import { ipClaim, nodePortClaim } from './claim-names.js';
import { alreadyAllocatedEvent, notAllocatedEvent, outOfRangeEvent } from './repair-events.js';

describe('repair events', () => {
  it('use upstream\'s reasons and messages', () => {
    expect(notAllocatedEvent(ipClaim('10.96.0.5'))).toEqual({ reason: 'ClusterIPNotAllocated', message: 'Cluster IP [IPv4]:10.96.0.5 is not allocated; repairing' });
    expect(notAllocatedEvent(nodePortClaim(30080))).toEqual({ reason: 'PortNotAllocated', message: 'Port 30080 is not allocated; repairing' });
    expect(alreadyAllocatedEvent(ipClaim('fd00::5'))).toEqual({
      reason: 'ClusterIPAlreadyAllocated',
      message: 'Cluster IP [IPv6]:fd00::5 was assigned to multiple services; please recreate service',
    });
    expect(outOfRangeEvent(nodePortClaim(80), '30000-32767')).toEqual({
      reason: 'PortOutOfRange',
      message: 'Port 80 is not within the port range 30000-32767; please recreate service',
    });
  });
});
