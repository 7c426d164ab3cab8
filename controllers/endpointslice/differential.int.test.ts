// Differential test against the real thing: kube-controller-manager's EndpointSlice and mirroring controllers and
// Switchboard's run side by side on one dual-stack API server, Switchboard with its own managed-by values. Each
// scenario drives a namespace through steps; after each step both controllers' slices for every Service named in
// the step must settle to the same endpoints (all fields), ports and number of slices, compared as sets where
// upstream is unordered. Scenarios run concurrently, each in its own namespace.
//
// Slice counts depend on history (which endpoint went to which slice is random upstream), so scenarios that cross
// the 100-endpoint boundary change the pod set in one atomic step (a selector switch over pre-made pods), from
// which both controllers' packings are determined.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubeClient } from '../runtime/client.js';
import { Informer } from '../runtime/informer.js';
import { EndpointSlices, Endpoints as EndpointsResource, Namespaces, Pods, Services } from '../../api/resources.js';
import { byNamespace } from '../runtime/store.js';
import type { EndpointSlice, Endpoints, Pod, Service } from '../../api/wire.js';
import { DEFAULT_ENDPOINTSLICE_MANAGED_BY, DEFAULT_MIRRORING_MANAGED_BY, LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_SKIP_MIRROR } from '../endpointutil/constants.js';
import {
  type PodSpecLite,
  type RunningControllers,
  type SliceSnapshot,
  createNode,
  createPod,
  forceDeletePod,
  inParallel,
  runControllers,
  setPodStatus,
  sliceSnapshot,
  snapshotEndpoints,
} from '../../testing/endpoint-cluster.js';
import { KUBELETLESS_OFF, LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { eventually } from '../../e2e/jest/cluster.js';
import { parseEndpointsJobFlags, registerEndpointControllers, type EndpointControllers } from '../../cmd/jobs/endpoints.js';

const OURS = 'endpointslice-controller.switchboard.dev';
const OURS_MIRROR = 'endpointslicemirroring-controller.switchboard.dev';
const SETTLE_TIMEOUT_MS = 60_000;

type ServiceSpec = NonNullable<Service['spec']>;

interface Expectation {
  /** Mirrored slices (of a selector-less Service) rather than the EndpointSlice controller's. */
  mirror?: boolean;
  /** No slices at all. */
  absent?: boolean;
  endpoints?: number;
  ready?: number;
  terminating?: number;
  slices?: number;
  /** Endpoints carrying hints. */
  hinted?: number;
  label?: [string, string];
}

let controlPlane: LocalControlPlane;
let client: KubeClient;
let switchboard: RunningControllers<EndpointControllers>;
let slices: Informer<EndpointSlice>;
let nextIP = 0;

/** A fresh pod IP of each family. */
function podIPs(): { v4: string; v6: string } {
  const i = ++nextIP;
  return { v4: `10.${20 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, v6: `fd00:20::${i.toString(16)}` };
}

function count(snapshot: SliceSnapshot, pick: (e: ReturnType<typeof snapshotEndpoints>[number]) => boolean): number {
  return snapshotEndpoints(snapshot).filter(pick).length;
}

function unmet(snapshot: SliceSnapshot, expected: Expectation): string | undefined {
  const total = Object.values(snapshot.slices).reduce((a, b) => a + b, 0);
  const checks: [boolean, string][] = [
    [expected.absent === true && total !== 0, `expected no slices, found ${total}`],
    [expected.endpoints !== undefined && snapshotEndpoints(snapshot).length !== expected.endpoints, `expected ${expected.endpoints} endpoints`],
    [expected.ready !== undefined && count(snapshot, (e) => e.ready === true) !== expected.ready, `expected ${expected.ready} ready`],
    [expected.terminating !== undefined && count(snapshot, (e) => e.terminating === true) !== expected.terminating, `expected ${expected.terminating} terminating`],
    [expected.slices !== undefined && total !== expected.slices, `expected ${expected.slices} slices, found ${total}`],
    [
      expected.hinted !== undefined && Object.values(snapshot.groups).flat().filter((t) => (JSON.parse(t) as { forZones: unknown }).forZones !== null).length !== expected.hinted,
      `expected ${expected.hinted} hinted endpoints`,
    ],
    [expected.label !== undefined && !snapshot.labels.every((l) => l.includes(JSON.stringify(expected.label))), `expected label ${JSON.stringify(expected.label)}`],
  ];
  return checks.find(([failed]) => failed)?.[1];
}

/** The lines of each pretty-printed snapshot that the other lacks. */
function snapshotDiff(theirs: SliceSnapshot, ours: SliceSnapshot): string {
  const lines = (s: SliceSnapshot) => JSON.stringify(s, null, 1).split('\n').map((l) => l.trim().replace(/,$/, ''));
  const a = lines(theirs);
  const b = lines(ours);
  const only = (x: string[], y: string[]) => x.filter((l) => !y.includes(l)).map((l) => `    ${l}`);
  return `  only kube-controller-manager has:\n${only(a, b).join('\n')}\n  only switchboard has:\n${only(b, a).join('\n')}`;
}

class Scenario {
  readonly steps: string[] = [];
  ns = '';

  constructor(readonly name: string) {}

  async setUp(): Promise<void> {
    this.ns = `diff-${this.name}`;
    await client.create(Namespaces, { metadata: { name: this.ns } });
  }

  service(name: string, spec: Partial<ServiceSpec> = {}, labels?: Record<string, string>, annotations?: Record<string, string>): Promise<Service> {
    return client.create<Service>(Services, {
      metadata: { name, namespace: this.ns, labels, annotations },
      spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...spec },
    });
  }

  patchService(name: string, patch: unknown, type: 'merge' | 'json' = 'merge'): Promise<Service> {
    return client.patch<Service>(Services, name, patch, type, { namespace: this.ns });
  }

  /** A pod with a fresh IPv4 (and IPv6 when `dual`) address on node-a1 unless told otherwise. */
  pod(name: string, labels: Record<string, string>, options: Partial<PodSpecLite> & { dual?: boolean; v6only?: boolean; noIP?: boolean } = {}): Promise<Pod> {
    const { v4, v6 } = podIPs();
    const ips = options.noIP ? [] : options.v6only ? [v6] : options.dual ? [v4, v6] : [v4];
    return createPod(client, this.ns, { node: 'node-a1', ips, ready: true, ...options, name, labels });
  }

  pods(count: number, prefix: string, labels: (i: number) => Record<string, string>, options: Partial<PodSpecLite> & { dual?: boolean } = {}): Promise<Pod[]> {
    return inParallel(Array.from({ length: count }, (_, i) => i), 16, (i) => this.pod(`${prefix}-${i}`, labels(i), options));
  }

  setStatus(name: string, state: Parameters<typeof setPodStatus>[3]): Promise<Pod> {
    return setPodStatus(client, this.ns, name, state);
  }

  /** Graceful delete: a pod bound to a Node stays Terminating (no kubelet confirms). */
  deletePod(name: string): Promise<void> {
    return client.delete(Pods, name, { namespace: this.ns });
  }

  forceDeletePod(name: string): Promise<void> {
    return forceDeletePod(client, this.ns, name);
  }

  private snapshots(service: string, mirror: boolean): { ours: SliceSnapshot; theirs: SliceSnapshot } {
    const of = (managedBy: string) =>
      sliceSnapshot(slices.store.byIndex('ns', this.ns).filter((s) => s.metadata?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME] === service && s.metadata?.labels?.[LABEL_MANAGED_BY] === managedBy));
    return mirror ? { ours: of(OURS_MIRROR), theirs: of(DEFAULT_MIRRORING_MANAGED_BY) } : { ours: of(OURS), theirs: of(DEFAULT_ENDPOINTSLICE_MANAGED_BY) };
  }

  private check(expected: Record<string, Expectation>): void {
    for (const [service, expectation] of Object.entries(expected)) {
      const { ours, theirs } = this.snapshots(service, expectation.mirror === true);
      const problem = unmet(ours, expectation) ?? unmet(theirs, expectation);
      const same = JSON.stringify(ours) === JSON.stringify(theirs);
      if (problem || !same) throw new Error(`${this.name}/${service}: ${problem ?? 'snapshots differ'}\n${snapshotDiff(theirs, ours)}`);
    }
  }

  /** Waits until both controllers agree and meet the expectation, twice half a second apart. */
  async settle(step: string, expected: Record<string, Expectation>): Promise<void> {
    this.steps.push(step);
    try {
      for (let stable = 0; stable < 2; ) {
        await eventually(() => this.check(expected), SETTLE_TIMEOUT_MS, 100);
        await new Promise((r) => setTimeout(r, 500));
        try {
          this.check(expected);
          stable = 2;
        } catch {
          stable = 0;
        }
      }
    } catch (err) {
      throw new Error(`step "${step}": ${(err as Error).message}`);
    }
  }
}

const http = (name: string) => [{ name: 'http', containerPort: name === 'alt' ? 9090 : 8080 }];

/** The scenarios: name → steps. Each runs in its own namespace. */
const scenarios: Record<string, (s: Scenario) => Promise<void>> = {
  async basic(s) {
    await s.service('web');
    await s.pods(3, 'w', () => ({ app: 'web' }));
    await s.settle('three ready pods', { web: { endpoints: 3, ready: 3, slices: 1 } });
    await s.pod('w-3', { app: 'web' }, { ready: false });
    await s.settle('a not-ready pod joins', { web: { endpoints: 4, ready: 3 } });
    await s.forceDeletePod('w-0');
    await s.settle('a pod is removed', { web: { endpoints: 3, ready: 2 } });
  },

  async 'no-pods'(s) {
    await s.service('lonely');
    await s.settle('placeholder slice', { lonely: { endpoints: 0, slices: 1 } });
    await s.pod('l-0', { app: 'lonely' });
    await s.settle('first pod replaces the placeholder', { lonely: { endpoints: 1, slices: 1 } });
    await s.forceDeletePod('l-0');
    await s.settle('back to a placeholder', { lonely: { endpoints: 0, slices: 1 } });
  },

  async 'scale-across-100'(s) {
    // Pod i carries s100, s101 and s205 when it is among the first 100, 101 and 205: a selector switch moves the
    // Service between those sets in one step.
    const sizes = [100, 101, 205];
    await s.pods(205, 'b', (i) => Object.fromEntries([['app', 'big'], ...sizes.filter((n) => i < n).map((n) => [`s${n}`, 'y'])]));
    await s.service('big', { selector: { app: 'big', s100: 'y' } });
    await s.settle('100 endpoints: one full slice', { big: { endpoints: 100, slices: 1 } });
    for (const [n, expectedSlices] of [[101, 2], [205, 3]] as const) {
      await s.patchService('big', { spec: { selector: { app: 'big', s100: null, s101: null, [`s${n}`]: 'y' } } });
      await s.settle(`${n} endpoints`, { big: { endpoints: n, slices: expectedSlices } });
    }
    await s.patchService('big', { spec: { selector: { app: 'big', s205: null, none: 'y' } } });
    await s.settle('0 endpoints: placeholder', { big: { endpoints: 0, slices: 1 } });
    await s.patchService('big', { spec: { selector: { app: 'big', none: null, s100: 'y' } } });
    await s.settle('100 again', { big: { endpoints: 100, slices: 1 } });
  },

  async 'readiness-flap'(s) {
    await s.service('flap');
    await s.pods(3, 'f', () => ({ app: 'flap' }));
    await s.settle('ready', { flap: { endpoints: 3, ready: 3 } });
    const ips = (await client.get<Pod>(Pods, 'f-0', s.ns)).status?.podIPs?.map((p) => p.ip) ?? [];
    for (const ready of [false, true, false, true, false]) await s.setStatus('f-0', { ips, ready });
    await s.settle('flapped, ends not ready', { flap: { endpoints: 3, ready: 2 } });
    await s.setStatus('f-0', { ips, ready: true });
    await s.settle('ready again', { flap: { endpoints: 3, ready: 3 } });
  },

  async terminating(s) {
    await s.service('term');
    await s.pods(2, 't', () => ({ app: 'term' }));
    await s.settle('ready', { term: { endpoints: 2, ready: 2 } });
    await s.deletePod('t-0');
    await s.settle('one terminating (serving)', { term: { endpoints: 2, ready: 1, terminating: 1 } });
    const ips = (await client.get<Pod>(Pods, 't-1', s.ns)).status?.podIPs?.map((p) => p.ip) ?? [];
    await s.setStatus('t-1', { ips, ready: false });
    await s.deletePod('t-1');
    await s.settle('both terminating, one not serving', { term: { endpoints: 2, ready: 0, terminating: 2 } });
    await Promise.all([s.forceDeletePod('t-0'), s.forceDeletePod('t-1')]);
    await s.settle('gone', { term: { endpoints: 0, slices: 1 } });
  },

  async 'rolling-update'(s) {
    await s.service('roll');
    await s.pods(3, 'v1', () => ({ app: 'roll', version: '1' }));
    await s.settle('v1 ready', { roll: { endpoints: 3, ready: 3 } });
    for (let i = 0; i < 3; i++) {
      await s.pod(`v2-${i}`, { app: 'roll', version: '2' }, { ready: false });
      await s.settle(`v2-${i} starting`, { roll: { endpoints: 4, ready: 3 } });
      const ips = (await client.get<Pod>(Pods, `v2-${i}`, s.ns)).status?.podIPs?.map((p) => p.ip) ?? [];
      await s.setStatus(`v2-${i}`, { ips, ready: true });
      await s.deletePod(`v1-${i}`);
      await s.settle(`v2-${i} ready, v1-${i} terminating`, { roll: { endpoints: 4, ready: 3, terminating: 1 } });
      await s.forceDeletePod(`v1-${i}`);
      await s.settle(`v1-${i} gone`, { roll: { endpoints: 3, ready: 3 } });
    }
  },

  async 'pod-label-change'(s) {
    await s.service('lbl');
    await s.pods(3, 'p', () => ({ app: 'lbl' }));
    await s.settle('three', { lbl: { endpoints: 3 } });
    await client.patch(Pods, 'p-1', { metadata: { labels: { app: 'other' } } }, 'merge', { namespace: s.ns });
    await s.settle('one relabelled away', { lbl: { endpoints: 2 } });
    await client.patch(Pods, 'p-1', { metadata: { labels: { app: 'lbl' } } }, 'merge', { namespace: s.ns });
    await s.settle('relabelled back', { lbl: { endpoints: 3 } });
  },

  async 'selector-change'(s) {
    await s.pods(2, 'blue', () => ({ app: 'sel', color: 'blue' }));
    await s.pods(3, 'green', () => ({ app: 'sel', color: 'green' }));
    await s.service('sel', { selector: { color: 'blue' } });
    await s.settle('blue', { sel: { endpoints: 2 } });
    await s.patchService('sel', { spec: { selector: { color: 'green' } } });
    await s.settle('green', { sel: { endpoints: 3 } });
    await s.patchService('sel', { spec: { selector: { color: 'red' } } });
    await s.settle('nothing selected', { sel: { endpoints: 0, slices: 1 } });
  },

  async 'headless-hostnames'(s) {
    await s.service('db', { clusterIP: 'None' });
    await s.pod('db-0', { app: 'db' }, { hostname: 'db-0', subdomain: 'db' });
    await s.pod('db-1', { app: 'db' }, { hostname: 'db-1', subdomain: 'elsewhere' });
    await s.pod('db-2', { app: 'db' });
    await s.settle('hostname only where the subdomain matches', { db: { endpoints: 3, slices: 1, label: ['service.kubernetes.io/headless', ''] } });
  },

  async 'headless-no-ports-dual-stack'(s) {
    await s.service('bare', { clusterIP: 'None', ports: [], ipFamilyPolicy: 'RequireDualStack' });
    await s.pods(2, 'bare', () => ({ app: 'bare' }), { dual: true });
    await s.settle('two pods, both families, no ports', { bare: { endpoints: 4, slices: 2 } });
  },

  async 'dual-stack'(s) {
    const svc = await s.service('ds', { ipFamilyPolicy: 'RequireDualStack' });
    await s.pods(2, 'ds', () => ({ app: 'ds' }), { dual: true });
    await s.pod('ds-v4', { app: 'ds' });
    await s.settle('IPv4 and IPv6 slices', { ds: { endpoints: 5, slices: 2 } });
    // Dropping the secondary family deletes its slices.
    await s.patchService('ds', { spec: { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv4'], clusterIPs: [svc.spec?.clusterIP] } });
    await s.settle('single-stack again', { ds: { endpoints: 3, slices: 1 } });
  },

  async 'ipv6-only'(s) {
    await s.service('six', { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'] });
    await s.pods(2, 'six', () => ({ app: 'six' }), { dual: true });
    await s.pod('six-v4', { app: 'six' });
    await s.settle('IPv6 endpoints only', { six: { endpoints: 2, slices: 1 } });
  },

  async 'nodes-zones'(s) {
    await s.service('zones');
    await s.pod('z-a', { app: 'zones' }, { node: 'node-a1' });
    await s.pod('z-b', { app: 'zones' }, { node: 'node-b1' });
    await s.pod('z-late', { app: 'zones' }, { node: 'node-late' });
    await s.settle('the pod on an unknown node is left out', { zones: { endpoints: 2 } });
    // Not ready, so that it does not change the zone shares the topology scenario relies on.
    await createNode(client, 'node-late', { zone: 'c', ready: false });
    await s.settle('its node appeared', { zones: { endpoints: 3 } });
    await createNode(client, 'node-nozone', { ready: false });
    await s.pod('z-nozone', { app: 'zones' }, { node: 'node-nozone' });
    await s.settle('a node without a zone label: no zone', { zones: { endpoints: 4 } });
  },

  async 'named-ports'(s) {
    await s.service('named', { ports: [{ name: 'web', port: 80, targetPort: 'http' }] });
    await s.pods(2, 'n', () => ({ app: 'named' }), { ports: http('main') });
    await s.pod('n-alt', { app: 'named' }, { ports: http('alt') });
    await s.pod('n-none', { app: 'named' });
    await s.settle('one slice per resolved port set', { named: { endpoints: 4, slices: 3 } });
    await s.pod('n-sidecar', { app: 'named' }, { ports: [], sidecarPorts: http('alt') });
    await s.settle('a named port of a sidecar counts', { named: { endpoints: 5, slices: 3 } });
    await s.patchService('named', { spec: { ports: [{ name: 'web', port: 80, targetPort: 8080 }] } });
    await s.settle('numeric target: one port set', { named: { endpoints: 5, slices: 1 } });
  },

  async 'unnamed-port'(s) {
    await s.service('plain', { ports: [{ port: 8000 }] });
    await s.pods(2, 'plain', () => ({ app: 'plain' }));
    await s.settle('port named ""', { plain: { endpoints: 2, slices: 1 } });
  },

  async 'non-canonical-ips'(s) {
    // The API accepts these spellings in pod status; EndpointSlices carry addresses as the controller prints them.
    await s.service('canon', { ipFamilyPolicy: 'RequireDualStack' });
    const i = podIPs();
    await s.pod('canon-0', { app: 'canon' }, { ips: [i.v4.replace(/^10\./, '010.'), i.v6.replace('fd00:20::', 'fd00:0020:0::0')] });
    await s.settle('canonical or verbatim, as upstream', { canon: { endpoints: 2, slices: 2 } });
  },

  async 'multi-port-protocols'(s) {
    await s.service('dns', {
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 5353, appProtocol: 'dns' },
        { name: 'sctp', port: 99, protocol: 'SCTP', targetPort: 9999 },
      ],
    });
    await s.pods(2, 'dns', () => ({ app: 'dns' }));
    await s.settle('three ports', { dns: { endpoints: 2, slices: 1 } });
  },

  async 'publish-not-ready'(s) {
    await s.service('pnr', { publishNotReadyAddresses: true });
    await s.pod('pnr-0', { app: 'pnr' });
    await s.pod('pnr-1', { app: 'pnr' }, { ready: false });
    await s.pod('pnr-2', { app: 'pnr' });
    await s.deletePod('pnr-2');
    await s.settle('ready even when not ready or terminating', { pnr: { endpoints: 3, ready: 3, terminating: 1 } });
  },

  async 'pods-without-ip'(s) {
    await s.service('noip');
    await s.pod('noip-0', { app: 'noip' }, { noIP: true });
    await s.pod('noip-1', { app: 'noip' });
    await s.settle('only the pod with an IP', { noip: { endpoints: 1 } });
    await s.setStatus('noip-0', { ips: [podIPs().v4], ready: true });
    await s.settle('IP assigned', { noip: { endpoints: 2 } });
    await s.pod('noip-unscheduled', { app: 'noip' }, { node: undefined });
    await s.pod('noip-2', { app: 'noip' });
    await s.settle('a pod with an IP but no node is left out', { noip: { endpoints: 3 } });
  },

  async 'terminal-pods'(s) {
    await s.service('job');
    await s.pods(3, 'job', () => ({ app: 'job' }));
    await s.settle('three', { job: { endpoints: 3 } });
    const ips = async (name: string) => (await client.get<Pod>(Pods, name, s.ns)).status?.podIPs?.map((p) => p.ip) ?? [];
    await s.setStatus('job-0', { ips: await ips('job-0'), ready: false, phase: 'Succeeded' });
    await s.settle('a succeeded pod leaves', { job: { endpoints: 2 } });
    // A phase change alone: upstream ignores it until the next sync of the Service, Switchboard acts at once.
    await s.setStatus('job-1', { ips: await ips('job-1'), ready: false });
    await s.settle('one not ready', { job: { endpoints: 2, ready: 1 } });
    await s.setStatus('job-1', { ips: await ips('job-1'), ready: false, phase: 'Failed' });
    await s.pod('job-3', { app: 'job' });
    await s.settle('a failed pod leaves by the next sync', { job: { endpoints: 2, ready: 2 } });
  },

  async 'service-deletion'(s) {
    await s.service('gone');
    await s.pods(2, 'g', () => ({ app: 'gone' }));
    await s.settle('two', { gone: { endpoints: 2 } });
    await client.delete(Services, 'gone', { namespace: s.ns });
    await s.settle('slices garbage-collected', { gone: { absent: true } });
  },

  async 'service-recreated'(s) {
    await s.service('again');
    await s.pods(2, 'a', () => ({ app: 'again' }));
    await s.settle('two', { again: { endpoints: 2 } });
    await client.delete(Services, 'again', { namespace: s.ns });
    await s.service('again');
    await s.settle('slices of the new Service (new owner uid)', { again: { endpoints: 2, slices: 1 } });
  },

  async 'service-labels'(s) {
    await s.service('labelled', {}, { team: 'a' });
    await s.pods(2, 'lab', () => ({ app: 'labelled' }));
    await s.settle('labels copied', { labelled: { endpoints: 2, label: ['team', 'a'] } });
    await s.patchService('labelled', { metadata: { labels: { team: 'b', tier: 'web' } } });
    await s.settle('labels follow the Service', { labelled: { endpoints: 2, label: ['team', 'b'] } });
    // Reserved keys on the Service are not copied (the slice's own values stay).
    await s.patchService('labelled', { metadata: { labels: { 'service.kubernetes.io/headless': 'x', 'kubernetes.io/service-name': 'other' } } });
    await s.settle('reserved labels skipped', { labelled: { endpoints: 2, label: ['kubernetes.io/service-name', 'labelled'] } });
  },

  async 'traffic-distribution'(s) {
    await s.service('close', { trafficDistribution: 'PreferClose' });
    await s.pod('c-a', { app: 'close' }, { node: 'node-a1' });
    await s.pod('c-b', { app: 'close' }, { node: 'node-b1' });
    await s.pod('c-x', { app: 'close' }, { node: 'node-b1', ready: false });
    await s.settle('ready endpoints hinted to their zone', { close: { endpoints: 3, hinted: 2 } });
    await s.patchService('close', { spec: { trafficDistribution: 'PreferSameNode' } });
    await s.settle('and to their node', { close: { endpoints: 3, hinted: 2 } });
    await s.patchService('close', { spec: { trafficDistribution: null } });
    await s.settle('hints removed', { close: { endpoints: 3, hinted: 0 } });
  },

  async 'topology-auto'(s) {
    await s.service('topo', {}, undefined, { 'service.kubernetes.io/topology-mode': 'Auto' });
    await s.pods(2, 'ta', () => ({ app: 'topo' }), { node: 'node-a1' });
    await s.pods(2, 'tb', () => ({ app: 'topo' }), { node: 'node-b1' });
    await s.settle('balanced zones: every endpoint hinted to its own', { topo: { endpoints: 4, hinted: 4 } });
    await s.patchService('topo', { metadata: { annotations: { 'service.kubernetes.io/topology-mode': null } } });
    await s.settle('annotation removed: hints removed', { topo: { endpoints: 4, hinted: 0 } });
  },

  async 'external-name'(s) {
    await s.service('ext', { type: 'ExternalName', externalName: 'example.com', ports: undefined, selector: { app: 'ext' } });
    await s.pods(2, 'ext', () => ({ app: 'ext' }));
    await s.service('marker');
    await s.pod('marker', { app: 'marker' });
    await s.settle('no slices for ExternalName', { marker: { endpoints: 1 }, ext: { absent: true } });
  },

  async 'hand-edited-slices'(s) {
    await s.service('edit');
    await s.pods(3, 'e', () => ({ app: 'edit' }));
    await s.settle('three', { edit: { endpoints: 3 } });
    const own = () => slices.store.byIndex('ns', s.ns).filter((x) => x.metadata?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME] === 'edit');
    // The same hand edits to both controllers' slices: both must restore what they manage.
    await Promise.all(own().map((x) => client.patch(EndpointSlices, x.metadata!.name!, { endpoints: x.endpoints.slice(0, 1) }, 'merge', { namespace: s.ns })));
    await s.settle('edits reverted', { edit: { endpoints: 3, slices: 1 } });
    await Promise.all(own().map((x) => client.delete(EndpointSlices, x.metadata!.name!, { namespace: s.ns })));
    await s.settle('deleted slices recreated', { edit: { endpoints: 3, slices: 1 } });
    // A slice carrying a controller's labels that the Service does not own is removed by that controller.
    await Promise.all(
      [OURS, DEFAULT_ENDPOINTSLICE_MANAGED_BY].map((managedBy) =>
        client.create(EndpointSlices, {
          metadata: { generateName: 'stray-', namespace: s.ns, labels: { [LABEL_ENDPOINTSLICE_SERVICE_NAME]: 'edit', [LABEL_MANAGED_BY]: managedBy } },
          addressType: 'IPv4',
          endpoints: [{ addresses: ['10.99.0.1'] }],
          ports: [],
        }),
      ),
    );
    await s.settle('stray slices removed', { edit: { endpoints: 3, slices: 1 } });
  },

  async 'pod-recreated-same-name'(s) {
    await s.service('ss', { clusterIP: 'None' });
    const ip = podIPs().v4;
    await s.pod('ss-0', { app: 'ss' }, { hostname: 'ss-0', subdomain: 'ss', ips: [ip] });
    await s.settle('one', { ss: { endpoints: 1 } });
    await s.forceDeletePod('ss-0');
    await s.pod('ss-0', { app: 'ss' }, { hostname: 'ss-0', subdomain: 'ss', ips: [ip] });
    await s.settle('same name and IP, new uid', { ss: { endpoints: 1 } });
  },

  async 'port-change'(s) {
    await s.service('port');
    await s.pods(3, 'port', () => ({ app: 'port' }));
    await s.settle('three on 8080', { port: { endpoints: 3, slices: 1 } });
    await s.patchService('port', { spec: { ports: [{ name: 'http', port: 80, targetPort: 9090 }] } });
    await s.settle('three on 9090', { port: { endpoints: 3, slices: 1 } });
  },

  async mirroring(s) {
    await s.service('manual', { selector: undefined, ports: [{ name: 'http', port: 80 }] });
    const endpoints = (addresses: string[], notReady: string[]): Endpoints => ({
      metadata: { name: 'manual', namespace: s.ns, labels: { source: 'hand' } },
      subsets: [
        {
          addresses: addresses.map((ip) => ({ ip })),
          notReadyAddresses: notReady.map((ip) => ({ ip })),
          ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        },
      ],
    });
    const created = await client.create<Endpoints>(EndpointsResource, endpoints(['10.30.0.1', '10.30.0.2', 'fd00:30::1'], ['10.30.0.3']));
    await s.settle('mirrored per family', { manual: { mirror: true, endpoints: 4, ready: 3, slices: 2, label: ['source', 'hand'] } });
    const rich: Endpoints = {
      metadata: { ...created.metadata, resourceVersion: undefined },
      subsets: [
        ...endpoints(['10.30.0.1', '10.30.0.2', 'fd00:30::1'], ['10.30.0.3']).subsets!,
        {
          addresses: [{ ip: '10.30.1.1', hostname: 'h1', nodeName: 'node-a1', targetRef: { kind: 'Pod', namespace: s.ns, name: 'some-pod', uid: 'u-1' } }],
          ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'web', port: 80, protocol: 'TCP', appProtocol: 'http' }],
        },
      ],
    };
    await client.replace(EndpointsResource, rich);
    await s.settle('a second subset with other ports', { manual: { mirror: true, endpoints: 5, slices: 3 } });
    await client.replace(EndpointsResource, { ...endpoints(['10.30.0.1'], ['10.30.0.3']), metadata: { ...created.metadata, resourceVersion: undefined } });
    await s.settle('the second subset and two addresses removed, the IPv6 one too', { manual: { mirror: true, endpoints: 2, ready: 1, slices: 1 } });
    await client.delete(EndpointsResource, 'manual', { namespace: s.ns });
    await s.settle('Endpoints deleted', { manual: { mirror: true, absent: true } });
  },

  async 'mirroring-skip-and-selector'(s) {
    await s.service('skip', { selector: undefined, ports: [{ name: 'http', port: 80 }] });
    await client.create<Endpoints>(EndpointsResource, {
      metadata: { name: 'skip', namespace: s.ns, labels: { [LABEL_SKIP_MIRROR]: 'true' } },
      subsets: [{ addresses: [{ ip: '10.31.0.1' }, { ip: '10.31.0.2' }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }],
    });
    await s.service('marker');
    await s.pod('marker', { app: 'marker' });
    await s.settle('skip-mirror honoured', { marker: { endpoints: 1 }, skip: { mirror: true, absent: true } });
    await client.patch(EndpointsResource, 'skip', { metadata: { labels: { [LABEL_SKIP_MIRROR]: null } } }, 'merge', { namespace: s.ns });
    await s.settle('label removed: mirrored', { skip: { mirror: true, endpoints: 2, slices: 1 } });
    await s.patchService('skip', { spec: { selector: { app: 'skip' } } });
    await s.settle('Service got a selector: mirrored slices removed', { skip: { mirror: true, absent: true } });
  },
};

describe('differential: Switchboard vs kube-controller-manager', () => {
  const outcomes = new Map<string, Promise<{ error?: Error; seconds: number; steps: number }>>();
  let started = 0;

  beforeAll(async () => {
    started = Date.now();
    controlPlane = new LocalControlPlane({
      serviceClusterIPRange: '10.96.0.0/16,fd00:10:96::/108',
      // Upstream's EndpointSlice and mirroring controllers (plus GC and the namespace controller); not Endpoints.
      kubeControllerManager: ['*', '-endpoints-controller', ...KUBELETLESS_OFF.map((c) => `-${c}`)],
    });
    await controlPlane.start();
    client = KubeClient.fromFile(controlPlane.kubeconfig, 'switchboard-test');
    await createNode(client, 'node-a1', { zone: 'a', cpu: '4' });
    await createNode(client, 'node-b1', { zone: 'b', cpu: '4' });
    slices = new Informer<EndpointSlice>(client, EndpointSlices, { indexers: { ns: byNamespace } });
    slices.start();
    await slices.waitForSync();
    const config = parseEndpointsJobFlags({ 'endpointslice-managed-by': OURS, 'mirroring-managed-by': OURS_MIRROR, 'endpoints-controller': 'false' });
    switchboard = await runControllers(controlPlane.kubeconfig, (manager) => registerEndpointControllers(manager, config));
    process.stderr.write(`[differential] control plane and controllers up in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    for (const [name, run] of Object.entries(scenarios)) {
      const scenario = new Scenario(name);
      const t0 = Date.now();
      outcomes.set(
        name,
        scenario.setUp().then(
          () => run(scenario).then(
            () => ({ seconds: (Date.now() - t0) / 1000, steps: scenario.steps.length }),
            (error: Error) => ({ error, seconds: (Date.now() - t0) / 1000, steps: scenario.steps.length }),
          ),
          (error: Error) => ({ error, seconds: 0, steps: 0 }),
        ),
      );
    }
  });

  afterAll(async () => {
    const rows = await Promise.all([...outcomes].map(async ([name, p]) => ({ name, ...(await p) })));
    const lines = rows.map((r) => `  ${r.error ? 'FAIL' : 'ok  '} ${r.name.padEnd(30)} ${String(r.steps).padStart(2)} steps ${r.seconds.toFixed(1).padStart(5)} s`);
    process.stderr.write(`[differential] ${rows.length} scenarios in ${((Date.now() - started) / 1000).toFixed(1)} s\n${lines.join('\n')}\n`);
    await switchboard?.stop();
    await slices?.stop();
    client?.close();
    await controlPlane?.stop();
  });

  it('has at least 20 scenarios', () => {
    expect(Object.keys(scenarios).length).toBeGreaterThanOrEqual(20);
  });

  it.each(Object.keys(scenarios))('%s: same endpoints, ports and slice count as upstream', async (name) => {
    const outcome = await outcomes.get(name)!;
    if (outcome.error) throw outcome.error;
  });

  it('logged every write failure it retried (none expected beyond stale caches and unknown nodes)', () => {
    const failures = switchboard.logs.filter((line) => line.includes('reconcile failed') && !/informer cache is out of date|Not Found|409/.test(line));
    expect(failures).toEqual([]);
  });
});
