import { describe, expect, it } from '@jest/globals';
import type { Manager } from '../../controllers/runtime/manager.js';
import { createLogger } from '../../controllers/runtime/log.js';
import { loadBalancerJob } from './loadbalancer.js';

const defaults = Object.fromEntries(Object.entries(loadBalancerJob.flags).map(([name, flag]) => [name, flag.default]));

/** A manager whose client and registration methods are absent: a job that touches any of them throws. */
function managerLoggingTo(lines: string[]): Manager {
  return { log: createLogger('test', { write: (line) => lines.push(line) }) } as unknown as Manager;
}

describe('loadbalancer job', () => {
  it('is on by default', () => {
    expect(loadBalancerJob.flags['load-balancer-controller']).toMatchObject({ default: 'true', help: expect.stringContaining('LoadBalancer') });
  });

  it('with --load-balancer-controller=false registers nothing and reads no CRD', async () => {
    const lines: string[] = [];
    await loadBalancerJob.register(managerLoggingTo(lines), { ...defaults, 'load-balancer-controller': 'false' }, { namespace: 'switchboard-system' });
    expect(lines.map((l) => JSON.parse(l) as { level: string; msg: string })).toEqual([
      expect.objectContaining({ level: 'info', msg: 'LoadBalancer allocation is off (--load-balancer-controller=false)' }),
    ]);
  });

  it('refuses a value that is not a boolean', async () => {
    await expect(loadBalancerJob.register(managerLoggingTo([]), { ...defaults, 'load-balancer-controller': 'maybe' }, { namespace: 'x' })).rejects.toThrow(
      '--load-balancer-controller: expected true or false, got "maybe"',
    );
  });
});
