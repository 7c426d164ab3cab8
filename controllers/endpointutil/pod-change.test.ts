import { describe, expect, it } from '@jest/globals';
import type { Pod } from '../../api/wire.js';
import { makePod, makeService } from '../../testing/endpoint-objects.js';
import { podUpdateEffect, servicesForPod, servicesForPodUpdate } from './pod-change.js';

function withVersion(pod: Pod, resourceVersion: string): Pod {
  return { ...pod, metadata: { ...pod.metadata, resourceVersion } };
}

describe('podUpdateEffect', () => {
  it('sees readiness, deletion and IP changes', () => {
    const pod = makePod('a', 0);
    expect(podUpdateEffect(pod, makePod('a', 0, { ready: false })).podChanged).toBe(true);
    expect(podUpdateEffect(pod, makePod('a', 0, { terminating: true })).podChanged).toBe(true);
    expect(podUpdateEffect(pod, makePod('a', 0, { ips: ['10.9.9.9'] })).podChanged).toBe(true);
    expect(podUpdateEffect(pod, makePod('a', 0))).toEqual({ podChanged: false, labelsChanged: false });
  });

  it('sees a phase turning terminal even without a readiness change (Switchboard)', () => {
    const before = makePod('job', 0, { ready: false });
    expect(podUpdateEffect(before, makePod('job', 0, { ready: false, phase: 'Succeeded' })).podChanged).toBe(true);
    expect(podUpdateEffect(before, makePod('job', 0, { ready: false, phase: 'Failed' })).podChanged).toBe(true);
    expect(podUpdateEffect(before, makePod('job', 0, { ready: false, phase: 'Pending' })).podChanged).toBe(false);
  });

  it('counts hostname and subdomain as label changes', () => {
    expect(podUpdateEffect(makePod('a', 0), makePod('a', 0, { hostname: 'h' })).labelsChanged).toBe(true);
    expect(podUpdateEffect(makePod('a', 0), makePod('a', 0, { labels: { app: 'db' } })).labelsChanged).toBe(true);
  });
});

describe('servicesForPodUpdate', () => {
  const web = makeService({ name: 'web', selector: { app: 'web' } });
  const db = makeService({ name: 'db', selector: { app: 'db' } });
  const none = makeService({ name: 'manual', selector: null });
  const services = [web, db, none];

  it('ignores resyncs', () => {
    const pod = withVersion(makePod('a', 0), '5');
    expect(servicesForPodUpdate(pod, withVersion(makePod('a', 0, { ready: false }), '5'), services).size).toBe(0);
  });

  it('labels only: the symmetric difference; labels and pod: the union', () => {
    const before = withVersion(makePod('a', 0, { labels: { app: 'web' } }), '1');
    const relabelled = withVersion(makePod('a', 0, { labels: { app: 'db' } }), '2');
    expect([...servicesForPodUpdate(before, relabelled, services)].sort()).toEqual(['default/db', 'default/web']);
    const hostnameOnly = withVersion(makePod('a', 0, { labels: { app: 'web' }, hostname: 'h' }), '2');
    expect([...servicesForPodUpdate(before, hostnameOnly, services)]).toEqual([]);
    const both = withVersion(makePod('a', 0, { labels: { app: 'web' }, hostname: 'h', ready: false }), '2');
    expect([...servicesForPodUpdate(before, both, services)]).toEqual(['default/web']);
  });

  it('a nil selector matches nothing', () => {
    expect([...servicesForPod(makePod('a', 0, { labels: {} }), services)]).toEqual([]);
  });
});
