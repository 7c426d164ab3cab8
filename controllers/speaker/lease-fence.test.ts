// LeaseFencer without an API server: a fence that fails (not a conflict) is reported for a retry once RETRY_MS has
// passed, since nothing else makes the speaker judge again while a dead peer's Lease stands still; the retry writes.
// The CAS itself and the holder's side are tested against a real API server (lease-fence.int.test.ts).
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { ApiError, type KubeClient } from '../runtime/client.js';
import { microTime } from '../runtime/leader-election.js';
import { silentLogger } from '../runtime/log.js';
import type { Lease } from '../../api/wire.js';
import { FENCED_BY_ANNOTATION, LeaseFencer } from './lease-fence.js';

const dead: Lease = { metadata: { name: 'speaker-n2', resourceVersion: '7' }, spec: { holderIdentity: 'n2', leaseDurationSeconds: 2, renewTime: microTime(1_000) } };
const unavailable = () => new ApiError(503, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'ServiceUnavailable', code: 503 }, 'PUT', '/leases/speaker-n2');

describe('lease fencer', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('reports a failed fence for a retry after the retry delay, and the retry writes it', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const puts: Lease[] = [];
    let failing = true;
    const client = {
      replace: async (_rt: unknown, body: Lease) => {
        puts.push(body);
        if (failing) throw unavailable();
        return body;
      },
    } as unknown as KubeClient; // the methods LeaseFencer uses
    const outcomes: string[] = [];
    const fencer = new LeaseFencer({
      client,
      namespace: 'ns',
      node: 'n1',
      log: silentLogger,
      onSettled: (o) => outcomes.push('lease' in o ? `fenced ${o.lease.metadata?.annotations?.[FENCED_BY_ANNOTATION]?.split(' ')[0]}` : 'gone' in o ? `gone ${o.gone}` : `retry ${o.retry}`),
    });
    fencer.fence([dead]);
    await jest.advanceTimersByTimeAsync(1);
    expect([puts.length, outcomes]).toEqual([1, []]);
    // Too soon: a second fence is not tried before the retry delay.
    fencer.fence([dead]);
    await jest.advanceTimersByTimeAsync(1);
    expect(puts).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(250);
    expect(outcomes).toEqual(['retry speaker-n2']);
    failing = false;
    fencer.fence([dead]);
    await jest.advanceTimersByTimeAsync(1);
    expect([puts.length, puts[1].metadata?.resourceVersion, fencer.fenced, outcomes.at(-1)]).toEqual([2, '7', 1, 'fenced n1']);
  });
});
