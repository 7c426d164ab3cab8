// Differential test of the Endpoints controller against kube-controller-manager's, on a control plane of its own:
// both write the same Endpoints objects, so they take turns. In each phase one controller writes the Endpoints of
// every Service, the objects are recorded and deleted, the other controller writes them again, and the two results
// must match: subsets (order-free), labels and the over-capacity annotation. The pod population crosses the
// 1000-address cap in every way truncation handles it.
//
// Which addresses survive truncation depends on subset order when the per-subset shares do not come out even, and
// upstream orders subsets by a hash; the populations below are chosen so that the shares are exact.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubeClient } from '../runtime/client.js';
import { Endpoints as EndpointsResource, Namespaces, Pods, Services } from '../../api/resources.js';
import type { Endpoints, Service } from '../../api/wire.js';
import { ANNOTATION_OVER_CAPACITY, ANNOTATION_TRIGGER_TIME } from '../endpointutil/constants.js';
import { type RunningControllers, createNode, createPod, forceDeletePod, inParallel, runControllers, setPodStatus } from '../../testing/endpoint-cluster.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { eventually } from '../../e2e/jest/cluster.js';
import { parseEndpointsJobFlags, registerEndpointControllers, type EndpointControllers } from '../../cmd/jobs/endpoints.js';

const NS = 'trunc';
const PODS = 1100;

let controlPlane: LocalControlPlane;
let client: KubeClient;

const ipOf = (i: number) => `10.40.${i >> 8}.${i & 255}`;
const group = (i: number) => (i % 2 === 0 ? 'a' : 'b');

/** Pod i's readiness in each phase, and whether it still exists. */
const phases = {
  A: { ready: (i: number) => i % 4 >= 2, exists: () => true },
  B: { ready: (i: number) => i % 44 >= 2, exists: () => true },
  C: { ready: (i: number) => i % 44 >= 2, exists: (i: number) => i < 900 },
};
type Phase = keyof typeof phases;

interface Expected {
  ready: number;
  notReady: number;
}

/** Address counts after truncation: ready ones first, 1000 in all. */
function capped(ready: number, notReady: number): Expected & { truncated: boolean } {
  if (ready + notReady <= 1000) return { ready, notReady, truncated: false };
  return ready <= 1000 ? { ready, notReady: 1000 - ready, truncated: true } : { ready: 1000, notReady: 0, truncated: true };
}

function expectedFor(phase: Phase): Record<string, ReturnType<typeof capped>> {
  const { ready, exists } = phases[phase];
  const live = Array.from({ length: PODS }, (_, i) => i).filter((i) => exists(i));
  const r = live.filter((i) => ready(i)).length;
  return {
    // One port: one subset.
    'trunc-single': capped(r, live.length - r),
    // A named port resolving to 8080 (group a) or 9090 (group b): two subsets of equal size, so exact shares.
    'trunc-named': capped(r, live.length - r),
    // Everything is ready.
    'trunc-publish': capped(live.length, 0),
    // Three small Services that exercise the rest: primary family only, port-less subsets, hostnames, terminating.
    dual: { ready: 2, notReady: 1, truncated: false },
    bare: { ready: 2, notReady: 1, truncated: false },
    hosts: { ready: 2, notReady: 1, truncated: false },
  };
}

/** An Endpoints object reduced to what both controllers must agree on, as sorted lines (order-free). */
function normalize(endpoints: Endpoints): string[] {
  const { [ANNOTATION_TRIGGER_TIME]: _trigger, ...annotations } = endpoints.metadata?.annotations ?? {};
  const lines = [`labels ${JSON.stringify(Object.entries(endpoints.metadata?.labels ?? {}).sort())}`, `annotations ${JSON.stringify(Object.entries(annotations).sort())}`];
  for (const s of endpoints.subsets ?? []) {
    // A subset is named by its ports; each address is one line under it.
    const ports = (s.ports ?? []).map((p) => `${p.name ?? ''}:${p.port}/${p.protocol}${p.appProtocol ? `(${p.appProtocol})` : ''}`).sort().join(',');
    const address = (ready: boolean) => (a: NonNullable<NonNullable<Endpoints['subsets']>[number]['addresses']>[number]) =>
      `subset[${ports}] ${ready ? 'ready' : 'not-ready'} ${a.ip} ${a.hostname ?? '-'} ${a.nodeName ?? '-'} ${a.targetRef?.kind}/${a.targetRef?.name}/${a.targetRef?.uid}`;
    lines.push(...(s.addresses ?? []).map(address(true)), ...(s.notReadyAddresses ?? []).map(address(false)));
  }
  return lines.sort();
}

/** Fails with the lines only one side has (a few of each), not two thousand-line objects. */
function expectSame(upstream: Map<string, string[]>, ours: Map<string, string[]>): void {
  const problems: string[] = [];
  for (const [name, theirs] of upstream) {
    const mine = ours.get(name) ?? [];
    const onlyTheirs = theirs.filter((l) => !mine.includes(l));
    const onlyOurs = mine.filter((l) => !theirs.includes(l));
    if (onlyTheirs.length || onlyOurs.length) {
      problems.push(`${name}: ${onlyTheirs.length} lines only upstream, e.g.\n    ${onlyTheirs.slice(0, 5).join('\n    ')}\n  ${onlyOurs.length} only Switchboard, e.g.\n    ${onlyOurs.slice(0, 5).join('\n    ')}`);
    }
  }
  expect(problems).toEqual([]);
}

function counts(endpoints: Endpoints): Expected {
  let ready = 0;
  let notReady = 0;
  for (const s of endpoints.subsets ?? []) {
    ready += s.addresses?.length ?? 0;
    notReady += s.notReadyAddresses?.length ?? 0;
  }
  return { ready, notReady };
}

/**
 * Waits until every Service's Endpoints has the expected counts and then stays the same for a second (the counts
 * alone can be right while a controller is still working through the last pod changes), and records them. Once
 * more than 1000 pods are ready the counts stop moving while the set kept still may, and a key waiting out a
 * retry backoff writes nothing for seconds: where the writer can say it has no work left, that is awaited too.
 */
async function settled(phase: Phase, writer: Writer): Promise<Map<string, string[]>> {
  for (;;) {
    const first = await withCounts(phase);
    await new Promise((r) => setTimeout(r, 1000));
    const second = await withCounts(phase);
    if (JSON.stringify([...first]) === JSON.stringify([...second]) && (writer.idle?.() ?? true)) return second;
  }
}

async function withCounts(phase: Phase): Promise<Map<string, string[]>> {
  const expected = expectedFor(phase);
  return eventually(async () => {
    const result = new Map<string, string[]>();
    for (const [name, want] of Object.entries(expected)) {
      const endpoints = await client.getOrUndefined<Endpoints>(EndpointsResource, name, NS);
      if (!endpoints) throw new Error(`${name}: no Endpoints yet`);
      const got = counts(endpoints);
      const overCapacity = endpoints.metadata?.annotations?.[ANNOTATION_OVER_CAPACITY] === 'truncated';
      if (got.ready !== want.ready || got.notReady !== want.notReady || overCapacity !== want.truncated) {
        throw new Error(`${name}: ${JSON.stringify({ got, overCapacity })}, want ${JSON.stringify(want)}`);
      }
      result.set(name, normalize(endpoints));
    }
    return result;
  }, 90_000, 250);
}

async function deleteAllEndpoints(): Promise<void> {
  const list = await client.list<Endpoints>(EndpointsResource, { namespace: NS });
  await Promise.all(list.items.map((e) => client.delete(EndpointsResource, e.metadata!.name!, { namespace: NS })));
}

/** A controller that takes its turn writing the Endpoints: start it, and the result stops it. */
interface Writer {
  start(): Promise<() => Promise<void>>;
  /** Whether the writer has no work queued, in progress or waiting to be retried (where it can tell). */
  idle?(): boolean;
}

const upstreamWriter: Writer = {
  async start() {
    await controlPlane.startControllerManager('kcm-endpoints', ['endpoints-controller']);
    return () => controlPlane.stopControllerManager('kcm-endpoints');
  },
};

/** Log lines of Switchboard's last turn. */
let switchboardLogs: string[] = [];
let switchboardRunning: RunningControllers<EndpointControllers> | undefined;
const switchboardWriter: Writer = {
  async start() {
    const config = parseEndpointsJobFlags({ 'endpointslice-controller': 'false', 'endpointslice-mirroring-controller': 'false', 'endpoint-controllers-namespace': NS });
    const running = await runControllers(controlPlane.kubeconfig, (manager) => registerEndpointControllers(manager, config));
    switchboardRunning = running;
    switchboardLogs = running.logs;
    return () => running.stop();
  },
  idle: () => switchboardRunning?.controllers.endpoints?.controller.queue.idle() ?? false,
};

/**
 * `first` runs while the pods move to `phase` and its Endpoints settle; it stops, the objects are deleted, and
 * `second` writes them anew: both results must be the same.
 */
async function takeTurns(phase: Phase, previous: Phase | undefined, first: Writer, second: Writer): Promise<void> {
  const stopFirst = await first.start();
  let before: Map<string, string[]>;
  try {
    if (previous) await applyPhase(phase, previous);
    before = await settled(phase, first);
  } finally {
    await stopFirst();
  }
  await deleteAllEndpoints();
  const stopSecond = await second.start();
  try {
    const after = await settled(phase, second);
    const [upstream, ours] = first === upstreamWriter ? [before, after] : [after, before];
    expectSame(upstream, ours);
  } finally {
    await stopSecond();
  }
}

async function applyPhase(phase: Phase, previous: Phase): Promise<void> {
  const before = phases[previous];
  const after = phases[phase];
  await inParallel(Array.from({ length: PODS }, (_, i) => i), 16, async (i) => {
    if (!before.exists(i)) return;
    if (!after.exists(i)) return forceDeletePod(client, NS, `big-${i}`);
    if (before.ready(i) !== after.ready(i)) await setPodStatus(client, NS, `big-${i}`, { ips: [ipOf(i)], ready: after.ready(i) });
  });
}

describe('Endpoints truncation: Switchboard vs kube-controller-manager', () => {
  const timings: string[] = [];
  let started = 0;

  beforeAll(async () => {
    started = Date.now();
    controlPlane = new LocalControlPlane({ serviceClusterIPRange: '10.96.0.0/16,fd00:10:96::/108', kubeControllerManager: false });
    await controlPlane.start();
    client = KubeClient.fromFile(controlPlane.kubeconfig, 'switchboard-test');
    await client.create(Namespaces, { metadata: { name: NS } });
    await createNode(client, 'node-1', { zone: 'a' });
    const svc = (name: string, spec: NonNullable<Service['spec']>) => client.create(Services, { metadata: { name, namespace: NS, labels: { suite: 'trunc' } }, spec });
    await svc('trunc-single', { selector: { app: 'big' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    await svc('trunc-named', { selector: { app: 'big' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
    await svc('trunc-publish', { selector: { app: 'big' }, publishNotReadyAddresses: true, ports: [{ port: 80 }] });
    await svc('dual', { selector: { app: 'small' }, ipFamilyPolicy: 'RequireDualStack', ports: [{ port: 80 }] });
    await svc('bare', { selector: { app: 'small' }, clusterIP: 'None' });
    await svc('hosts', { selector: { app: 'small' }, clusterIP: 'None', ports: [{ name: 'x', port: 1 }, { name: 'y', port: 2, protocol: 'UDP' }] });
    await inParallel(Array.from({ length: PODS }, (_, i) => i), 16, (i) =>
      createPod(client, NS, {
        name: `big-${i}`,
        labels: { app: 'big' },
        node: 'node-1',
        ips: [ipOf(i)],
        ready: phases.A.ready(i),
        ports: [{ name: 'http', containerPort: group(i) === 'a' ? 8080 : 9090 }],
      }),
    );
    for (let i = 0; i < 4; i++) {
      await createPod(client, NS, { name: `small-${i}`, labels: { app: 'small' }, node: 'node-1', ips: [`10.41.0.${i + 1}`, `fd00:41::${i + 1}`], ready: i !== 1, hostname: `small-${i}`, subdomain: 'hosts' });
    }
    await client.delete(Pods, 'small-3', { namespace: NS }); // terminating: left out (no publishNotReadyAddresses)
    timings.push(`setup (control plane, ${PODS} pods) ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  afterAll(async () => {
    process.stderr.write(`[endpoints differential] ${timings.join('; ')}; total ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    client?.close();
    await controlPlane?.stop();
  });

  const phase = (name: Phase, run: () => Promise<void>) => async () => {
    const t0 = Date.now();
    await run();
    timings.push(`${name} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  };

  it(
    'phase A (not-ready addresses truncated): Switchboard rewrites what kube-controller-manager wrote',
    phase('A', async () => {
      await takeTurns('A', undefined, upstreamWriter, switchboardWriter);
      expect(switchboardLogs.some((l) => l.includes('Endpoints over capacity') && l.includes('trunc-single'))).toBe(true);
    }),
  );

  it(
    'phase B (ready addresses truncated, not-ready dropped): kube-controller-manager rewrites what Switchboard wrote',
    phase('B', () => takeTurns('B', 'A', switchboardWriter, upstreamWriter)),
  );

  it('phase C (back under capacity): the annotation goes, and both agree again', phase('C', () => takeTurns('C', 'B', upstreamWriter, switchboardWriter)));
});
