// Chaos: Switchboard throttled by the API server. API Priority and Fairness gives Switchboard's ServiceAccount a
// priority level of its own with the smallest share there is (1 nominal share, nothing lent or borrowed, one queue
// of length 1), so the API server answers many of its requests 429 with Retry-After; its Lease requests go to the
// suggested `leader-election` level, as a cluster operator would route them. A rollout (pods created not ready
// behind 10 Services, then all becoming ready) must still converge to exact slices and Endpoints; the client must
// have retried 429s (its switchboard_api_requests_total{code="429"}), and the logs must show no error storm.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { Nodes, type ResourceType } from '../../api/resources.js';
import type { KubeObject } from '../../api/wire.js';
import { createNode } from '../../testing/endpoint-cluster.js';
import { controlPlaneInfo, createNamespace, deleteNamespace, randomSuffix, serviceAccountKubeconfig, testClient } from '../jest/cluster.js';
import { requireBuiltSwitchboard, stopSwitchboard, waitForOutput, type SwitchboardProcess } from '../jest/switchboard-process.js';
import { EndpointChurn } from './endpoint-churn.js';
import { electedLeader, startEndpointReplica } from './replicas.js';
import { spread, trials } from './trials.js';

const log = (line: string) => process.stderr.write(`[chaos: throttling] ${line}\n`);

const flowcontrol = (plural: string, kind: string): ResourceType => ({ group: 'flowcontrol.apiserver.k8s.io', version: 'v1', plural, kind, namespaced: false });
const PriorityLevelConfigurations = flowcontrol('prioritylevelconfigurations', 'PriorityLevelConfiguration');
const FlowSchemas = flowcontrol('flowschemas', 'FlowSchema');
const ClusterRoleBindings: ResourceType = { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false };
const ServiceAccounts: ResourceType = { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true };

const SERVICES = 10;
const PODS = 300;
/**
 * An error storm is more than this many warn/error lines in one second. Without the 429 retry the worst second had
 * 104; with it 3 to 7 (stale-cache retries of the rollout itself), so 20 tells the two apart with room for noise.
 */
const MAX_WARNINGS_PER_SECOND = 20;

/** The APF objects that squeeze ServiceAccount `namespace/name` into a level of its own, its leases excepted. */
function flowControlFor(name: string, namespace: string, serviceAccount: string): { rt: ResourceType; object: KubeObject }[] {
  const subjects = [{ kind: 'ServiceAccount', serviceAccount: { namespace, name: serviceAccount } }];
  return [
    {
      rt: PriorityLevelConfigurations,
      object: {
        metadata: { name },
        spec: {
          type: 'Limited',
          limited: {
            nominalConcurrencyShares: 1,
            lendablePercent: 0,
            borrowingLimitPercent: 0,
            limitResponse: { type: 'Queue', queuing: { queues: 1, handSize: 1, queueLengthLimit: 1 } },
          },
        },
      } as KubeObject,
    },
    {
      rt: FlowSchemas,
      object: {
        metadata: { name: `${name}-leases` },
        spec: {
          priorityLevelConfiguration: { name: 'leader-election' },
          matchingPrecedence: 999,
          distinguisherMethod: { type: 'ByUser' },
          rules: [{ subjects, resourceRules: [{ verbs: ['*'], apiGroups: ['coordination.k8s.io'], resources: ['leases'], namespaces: [namespace] }] }],
        },
      } as KubeObject,
    },
    {
      rt: FlowSchemas,
      object: {
        metadata: { name },
        spec: {
          priorityLevelConfiguration: { name },
          matchingPrecedence: 1000,
          distinguisherMethod: { type: 'ByUser' },
          rules: [
            {
              subjects,
              resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'], namespaces: ['*'], clusterScope: true }],
              nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }],
            },
          ],
        },
      } as KubeObject,
    },
  ];
}

/** The sum of a counter's samples whose labels include `labels`, from Prometheus text. */
function counterSum(metrics: string, name: string, labels: string): number {
  return metrics
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && line.includes(labels))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/** Its warn and error lines: how many per second of its life, and how many of each message (with the API's code and reason). */
function warnings(p: SwitchboardProcess): { perSecond: Map<number, number>; messages: Map<string, number> } {
  const perSecond = new Map<number, number>();
  const messages = new Map<string, number>();
  for (const line of p.output) {
    const entry = JSON.parse(line) as { ts: string; level: string; msg: string; error?: string };
    if (entry.level !== 'warn' && entry.level !== 'error') continue;
    const second = Math.floor(Date.parse(entry.ts) / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    const status = / (\d{3} [A-Za-z]+)/.exec(entry.error ?? '')?.[1];
    const message = status ? `${entry.msg} (${status})` : entry.msg;
    messages.set(message, (messages.get(message) ?? 0) + 1);
  }
  return { perSecond, messages };
}

describe('chaos: Switchboard throttled by API Priority and Fairness (429 + Retry-After)', () => {
  let client: KubeClient;
  let dir: string;
  const created: { rt: ResourceType; name: string }[] = [];
  const namespaces: string[] = [];
  const replicas: SwitchboardProcess[] = [];
  const node = `chaos-throttle-${randomSuffix()}`;

  beforeAll(async () => {
    requireBuiltSwitchboard();
    client = testClient();
    dir = await mkdtemp(join(tmpdir(), 'switchboard-throttling-'));
    await createNode(client, node);
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => stopSwitchboard(r, 'SIGKILL')));
    for (const { rt, name } of created.reverse()) await client.delete(rt, name).catch(() => undefined);
    for (const ns of namespaces) await deleteNamespace(client, ns);
    await client.delete(Nodes, node).catch(() => undefined);
    client.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const count = trials(1, 3);
  it(`converges a ${PODS}-pod rollout behind ${SERVICES} Services with a tiny share, retrying 429s without an error storm (${count} trials)`, async () => {
    const convergences: number[] = [];
    const throttled: number[] = [];
    for (let trial = 0; trial < count; trial++) {
      const ns = await createNamespace(client, `throttle-${trial}`);
      namespaces.push(ns);
      await client.create(ServiceAccounts, { metadata: { name: 'switchboard', namespace: ns } });
      const binding = `${ns}-switchboard`;
      await client.create(ClusterRoleBindings, {
        metadata: { name: binding },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'ServiceAccount', name: 'switchboard', namespace: ns }],
      } as KubeObject);
      created.push({ rt: ClusterRoleBindings, name: binding });
      for (const { rt, object } of flowControlFor(`${ns}-tiny`, ns, 'switchboard')) {
        await client.create(rt, object);
        created.push({ rt, name: object.metadata!.name! });
      }
      const kubeconfig = await serviceAccountKubeconfig(client, controlPlaneInfo().kubeconfig, ns, 'switchboard', join(dir, `${ns}.kubeconfig`));

      const churn = await EndpointChurn.start(client, ns, node, SERVICES, 200 + trial);
      const replica = startEndpointReplica(`throttle-${trial}`, kubeconfig, ns);
      replicas.push(replica);
      await electedLeader(client, ns, [replica]);
      await waitForOutput(replica, '"serving metrics and health"');

      const started = Date.now();
      await churn.addPods(PODS, false, 16);
      await churn.makeReady(PODS, 16);
      const lastChange = Date.now();
      await churn.converged(120_000);
      const convergedMs = Date.now() - lastChange;

      const port = (JSON.parse(replica.output.find((l) => l.includes('"serving metrics and health"'))!) as { port: number }).port;
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const tooMany = counterSum(metrics, 'switchboard_api_requests_total', 'code="429"');
      const { perSecond, messages } = warnings(replica);
      const worstSecond = Math.max(0, ...perSecond.values());
      log(
        `trial ${trial}: ${PODS} pods created and made ready in ${lastChange - started} ms; slices and Endpoints exact ${convergedMs} ms after the last change; ` +
          `${tooMany} 429 answers, each retried after its Retry-After; warn/error lines: at most ${worstSecond} in one second, ${JSON.stringify(Object.fromEntries(messages))}`,
      );
      expect(tooMany).toBeGreaterThan(0); // the squeeze bit, or this proves nothing
      expect(worstSecond).toBeLessThanOrEqual(MAX_WARNINGS_PER_SECOND);
      expect(replica.child.exitCode).toBeNull(); // it kept its lease throughout
      convergences.push(convergedMs);
      throttled.push(tooMany);
      await stopSwitchboard(replica);
    }
    log(`${count} trials: convergence after the last change ${spread(convergences)}; 429s per trial ${throttled.join(', ')}; 0 endpoints lost, 0 duplicated`);
  }, trials(240_000, 600_000));
});
