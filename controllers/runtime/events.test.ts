import { describe, it, expect } from '@jest/globals';
import type { KubeClient } from './client.js';
import { EventCorrelator, EventRecorder, type EventDraft } from './events.js';
import type { KubeEvent } from '../../api/wire.js';

const svc = { apiVersion: 'v1', kind: 'Service', namespace: 'ns', name: 'web', uid: 'u1' };
const draft = (message: string, reason = 'FailedToUpdateEndpointSlices'): EventDraft => ({ involved: svc, type: 'Warning', reason, message });

describe('EventCorrelator', () => {
  it('creates the first event and bumps the count of identical ones', () => {
    const c = new EventCorrelator();
    expect(c.correlate(draft('boom'), 0)).toMatchObject({ action: 'create', message: 'boom' });
    expect(c.correlate(draft('boom'), 1)).toMatchObject({ action: 'bump', count: 2 });
    expect(c.correlate(draft('boom'), 2)).toMatchObject({ action: 'bump', count: 3 });
  });

  it('combines the 10th distinct message of one reason into an aggregate event', () => {
    const c = new EventCorrelator();
    for (let i = 1; i <= 9; i++) expect(c.correlate(draft(`m${i}`), i).action).toBe('create');
    const tenth = c.correlate(draft('m10'), 10);
    expect(tenth).toMatchObject({ action: 'create', message: '(combined from similar events): m10' });
    expect(c.correlate(draft('m11'), 11)).toMatchObject({ action: 'bump', count: 2, message: '(combined from similar events): m11' });
    // Another reason is aggregated separately.
    expect(c.correlate(draft('m1', 'Other'), 12).action).toBe('create');
  });

  it('starts a new aggregation window after 10 minutes', () => {
    const c = new EventCorrelator();
    for (let i = 1; i <= 10; i++) c.correlate(draft(`m${i}`), i);
    expect(c.correlate(draft('fresh'), 600_100)).toMatchObject({ action: 'create', message: 'fresh' });
  });

  it('drops a flood beyond a burst of 25 per object and refills one per 5 minutes', () => {
    const c = new EventCorrelator();
    const actions = Array.from({ length: 30 }, (_, i) => c.correlate(draft('same'), i).action);
    expect(actions.filter((a) => a !== 'drop')).toHaveLength(25);
    expect(c.correlate(draft('same'), 30 + 300_000).action).toBe('bump');
    expect(c.correlate(draft('same'), 31 + 300_000).action).toBe('drop');
  });
});

describe('EventRecorder', () => {
  it('writes the bumps of one Event in order, so its count never goes back, however the API answers', async () => {
    const counts: number[] = [];
    let patches = 0;
    const fake = {
      create: async (_rt: unknown, event: KubeEvent) => event,
      // The first bump answers slowly, the second at once: written concurrently, the count would end at 2.
      patch: async (_rt: unknown, _name: string, patch: { count: number }) => {
        if (patches++ === 0) await new Promise((r) => setTimeout(r, 50));
        counts.push(patch.count);
      },
    } as unknown as KubeClient; // the two methods EventRecorder uses
    const recorder = new EventRecorder(fake, 'test', 'host', undefined, () => 0);
    for (let i = 0; i < 3; i++) recorder.event(svc, 'Warning', 'Slow', 'same');
    await new Promise((r) => setTimeout(r, 200));
    expect(counts).toEqual([2, 3]);
  });
});
