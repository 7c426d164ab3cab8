// Release under load (issue 10, item 7): a nodePort or ClusterIP freed by a delete or a type change is taken by a
// DIFFERENT Service in the very next request, while concurrent creates keep the claim controller busy.
// kube-apiserver frees a value in the request that lets go of it, so none of those creates may be refused.
//
// On the shared control plane: a `switchboard controller` with allocation on (its webhook configurations under a
// name of their own, removed afterwards), endpoint and LoadBalancer controllers off. While it runs the webhook
// serves every Service write of the cluster, as it would in production.
//
// Lanes run side by side; each owns one nodePort and one ClusterIP from the static bands, which dynamic picks
// leave alone while the dynamic bands have room, so the background creates never take a lane's values (their
// picks are random; nothing checked here depends on them, and the test makes no random choice of its own).
// Lane cycles alternate:
//   type change → create: the holder becomes type ClusterIP (frees its nodePort, keeps the lane's IP: it is
//                         parked); a new Service asks for the nodePort.
//   delete → create:      the holder and the parked Service are deleted; a new Service asks for the nodePort and
//                         the IP.
// `make test-chaos` (SWITCHBOARD_CHAOS=full) runs 1000 cycles instead of 100.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { claimName, ipClaim } from '../../allocators/service/claim-names.js';
import { bandOfIP, ipAtOffset, parseServiceClusterIPRangeFlag } from '../../allocators/service/ip-range.js';
import { bandOfPort, nodePortRange } from '../../allocators/service/port-range.js';
import { MutatingWebhookConfigurations, Services, ValidatingWebhookConfigurations } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import { freePort } from '../../cmd/up/controlplane/processes.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, eventually, testClient } from '../jest/cluster.js';
import { audit, claimsSettle } from '../jest/service-allocation.js';
import { replicaFlags, requireBuiltSwitchboard, spawnSwitchboard, stopSwitchboard, waitForOutput, type SwitchboardProcess } from '../jest/switchboard-process.js';
import { isNotFound, type KubeClient } from '../../controllers/runtime/client.js';
import { deleteWebhookConfigurations } from '../../controllers/runtime/webhook/configuration.js';
import { trials } from './trials.js';

const CYCLES = trials(100, 1000);
const LANES = 10;
/** Background creates (each deleted once made) in flight, and at most this many in all. */
const LOAD_IN_FLIGHT = 20;
const MAX_LOAD_CREATES = trials(3_000, 20_000);
/** Cycles not done by then are counted as not done (and fail the test) rather than waited for. */
const CYCLE_BUDGET_MS = trials(150_000, 900_000);
const CONFIGURATION = 'switchboard-release-under-load';
const log = (line: string) => process.stderr.write(`[release-under-load] ${line}\n`);

interface Lane {
  readonly index: number;
  readonly nodePort: number;
  readonly ip: string;
  /** Holds the lane's nodePort (and its IP after a delete cycle). */
  holder: string;
  /** Type ClusterIP since a type-change cycle, still holding the lane's IP. */
  parked?: string;
}

interface CycleResult {
  readonly kind: 'delete' | 'type-change';
  readonly lane: number;
  /** How long the create of the new Service took. */
  readonly createMs: number;
  readonly refusal?: string;
}

const laneService = (name: string, nodePort: number, clusterIP?: string): Service => ({
  metadata: { name },
  spec: { type: 'NodePort', ...(clusterIP ? { clusterIP } : {}), ports: [{ port: 80, nodePort }] },
});

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

describe('a freed value is reusable by the very next request, under load', () => {
  let client: KubeClient;
  let ns: string;
  let controller: SwitchboardProcess;
  const info = controlPlaneInfo();
  const ipRange = parseServiceClusterIPRangeFlag(info.serviceClusterIPRange)[0];
  const portRange = nodePortRange(info.serviceNodePortRange);

  beforeAll(async () => {
    requireBuiltSwitchboard();
    client = testClient();
    ns = await createNamespace(client, 'release');
    const port = await freePort();
    controller = spawnSwitchboard('release', [
      ...replicaFlags(info.kubeconfig, ns, 'release'),
      '--endpointslice-controller=false',
      '--endpoints-controller=false',
      '--endpointslice-mirroring-controller=false',
      '--load-balancer-controller=false',
      `--webhook-url=https://127.0.0.1:${port}`,
      `--webhook-bind-address=127.0.0.1:${port}`,
      `--webhook-configuration-name=${CONFIGURATION}`,
    ]);
    await waitForOutput(controller, '"admission webhook serving"', 60_000);
    await eventually(async () => {
      const both = await Promise.all([MutatingWebhookConfigurations, ValidatingWebhookConfigurations].map((rt) => client.getOrUndefined(rt, CONFIGURATION)));
      return both.every(Boolean);
    }, 60_000);
    // The API server applies a new configuration a moment later: wait until a create is reserved by the webhook
    // (a claim with the admission request's uid, where the repair controller's adoption would have none).
    let probe = 0;
    await eventually(async () => {
      const name = `probe-${probe++}`;
      const made = await client.create<Service>(Services, { metadata: { name, namespace: ns }, spec: { ports: [{ port: 80 }] } });
      const claim = await client.getOrUndefined<ServiceClaim>(ServiceClaims, claimName(ipClaim(made.spec?.clusterIP ?? '')));
      await client.delete(Services, name, { namespace: ns });
      return Boolean(claim?.spec.request);
    }, 30_000, 250);
  }, 120_000);

  afterAll(async () => {
    if (controller) await stopSwitchboard(controller);
    // The configurations fail closed: gone before anything else runs on this control plane.
    if (client) {
      await deleteWebhookConfigurations(client, CONFIGURATION);
      await deleteNamespace(client, ns);
      // Claims mean nothing without the controller; other suites start from none.
      for (const claim of (await client.listAll<ServiceClaim>(ServiceClaims)).items) {
        await client.delete(ServiceClaims, claim.metadata.name ?? '').catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
      }
      client.close();
    }
  }, 60_000);

  it(`${CYCLES} delete→create and type-change→create cycles: 0 refusals, 0 duplicates`, async () => {
    const create = (service: Service) => client.create<Service>(Services, { ...service, metadata: { ...service.metadata, namespace: ns } });
    const remove = (name: string) => client.delete(Services, name, { namespace: ns });
    const lanes: Lane[] = [];
    for (let index = 0; index < LANES; index++) {
      const lane: Lane = { index, nodePort: portRange.base + 20 + index, ip: ipAtOffset(ipRange, BigInt(200 + index)) ?? '', holder: `lane-${index}-0` };
      if (bandOfPort(portRange, lane.nodePort) !== 'static' || bandOfIP(ipRange, lane.ip) !== 'static') throw new Error(`lane ${index}: values outside the static bands`);
      await create(laneService(lane.holder, lane.nodePort, lane.ip));
      lanes.push(lane);
    }

    let cyclesDone = false;
    const load = { created: 0, failures: [] as string[] };
    const background = Array.from({ length: LOAD_IN_FLIGHT }, async (_, worker) => {
      while (!cyclesDone && load.created < MAX_LOAD_CREATES) {
        const name = `load-${worker}-${load.created++}`;
        try {
          await create({ metadata: { name }, spec: { type: 'NodePort', ports: [{ port: 80 }] } });
          await remove(name);
        } catch (err) {
          load.failures.push(`${name}: ${String(err)}`);
        }
      }
    });

    const started = Date.now();
    const deadline = started + CYCLE_BUDGET_MS;
    const results: CycleResult[] = [];
    const runLane = async (lane: Lane) => {
      for (let cycle = 1; cycle <= CYCLES / LANES && Date.now() < deadline; cycle++) {
        const next = `lane-${lane.index}-${cycle}`;
        const kind = cycle % 2 === 1 ? 'type-change' : 'delete';
        let service: Service;
        if (kind === 'type-change') {
          await client.patch(Services, lane.holder, { spec: { type: 'ClusterIP' } }, 'merge', { namespace: ns });
          lane.parked = lane.holder;
          service = laneService(next, lane.nodePort);
        } else {
          await Promise.all([lane.holder, lane.parked].filter((n): n is string => n !== undefined).map(remove));
          lane.parked = undefined;
          service = laneService(next, lane.nodePort, lane.ip);
        }
        const createStart = Date.now();
        try {
          await create(service);
          results.push({ kind, lane: lane.index, createMs: Date.now() - createStart });
        } catch (err) {
          results.push({ kind, lane: lane.index, createMs: Date.now() - createStart, refusal: String(err) });
          return; // the lane's value is lost to it: its next cycles would only repeat the refusal
        }
        lane.holder = next;
      }
    };
    await Promise.all(lanes.map(runLane));
    const cycleSeconds = (Date.now() - started) / 1000;
    cyclesDone = true;
    await Promise.all(background);

    const refusals = results.filter((r) => r.refusal !== undefined);
    const createMs = results.map((r) => r.createMs).sort((a, b) => a - b);
    const services = (await client.listAll<Service>(Services)).items;
    const { duplicates } = audit(services, { ips: ipRange, ports: portRange });
    const settleStart = Date.now();
    const settled = await claimsSettle(client, 60_000, 500, { ips: ipRange, ports: portRange }).then(
      () => `claims matched Services ${((Date.now() - settleStart) / 1000).toFixed(1)} s later`,
      (err: unknown) => String(err),
    );
    const takeovers = new Map<string, number>();
    for (const line of controller.output.filter((l) => l.includes('"took over a claim"'))) {
      const reason = /"reason":"([^"]+)"/.exec(line)?.[1] ?? '?';
      takeovers.set(reason, (takeovers.get(reason) ?? 0) + 1);
    }
    log(
      `${results.length}/${CYCLES} cycles (${LANES} lanes) in ${cycleSeconds.toFixed(1)} s with ${load.created} background creates ` +
        `(${LOAD_IN_FLIGHT} in flight, ${load.failures.length} failed); refusals ${refusals.length} ` +
        `(type change ${refusals.filter((r) => r.kind === 'type-change').length}, delete ${refusals.filter((r) => r.kind === 'delete').length}); ` +
        `create after release min/median/p99/max ${createMs[0]}/${percentile(createMs, 0.5)}/${percentile(createMs, 0.99)}/${createMs[createMs.length - 1]} ms; ` +
        `claims taken over by the webhook: ${[...takeovers].map(([reason, n]) => `${reason} ${n}`).join(', ') || 'none'}; ` +
        `duplicates ${duplicates.length}; ${settled}`,
    );
    for (const refusal of refusals.slice(0, 5)) log(`refused (${refusal.kind}, lane ${refusal.lane}): ${refusal.refusal?.slice(0, 300)}`);

    expect(refusals.map((r) => r.refusal)).toEqual([]);
    expect(results).toHaveLength(CYCLES);
    expect(load.failures.slice(0, 5)).toEqual([]);
    expect(duplicates).toEqual([]);
    expect(settled).toMatch(/^claims matched/);
  }, CYCLE_BUDGET_MS + 120_000);
});
