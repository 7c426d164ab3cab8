// Forged admission requests: a caller that is not kube-apiserver POSTs hand-made AdmissionReviews straight to the
// webhook ports (the attack: reserve the nodePorts others ask for, and so refuse their Services). With client
// authentication on, as the local control plane sets it up, a `switchboard controller` serving both the
// allocation webhooks and the pool webhook must answer every forged review with a denial and no side effect, while
// legitimate creates of NodePort and ClusterIP Services through the real API server, some asking for exactly the
// ports the flood targets, all succeed. A control plane of its own: its fail-closed webhooks must not reach other
// suites.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { AdmissionReviewResponse } from '../../../api/admission.js';
import { MutatingWebhookConfigurations, Namespaces, Services, ValidatingWebhookConfigurations } from '../../../api/resources.js';
import type { KubeObject, Service } from '../../../api/wire.js';
import { IPAddressPools, type IPAddressPool } from '../../../crds/ipaddresspool.js';
import { ServiceClaims, type ServiceClaim } from '../../../crds/serviceclaim.js';
import { LocalControlPlane, WEBHOOK_CLIENT_NAME } from '../../../cmd/up/controlplane/controlplane.js';
import { freePort } from '../../../cmd/up/controlplane/processes.js';
import { eventually } from '../../../e2e/jest/cluster.js';
import { replicaFlags, spawnSwitchboard, stopSwitchboard, waitForOutput, type SwitchboardProcess } from '../../../e2e/jest/switchboard-process.js';
import { MUTATE_PATH, VALIDATE_PATH } from '../../serviceallocation/webhook-configurations.js';
import { L2_PATH, POOL_PATH, WEBHOOK_CONFIGURATION as POOL_CONFIGURATION } from '../../loadbalancer/webhook.js';
import { ApiError, KubeClient } from '../client.js';
import { createCertificateAuthority, issueCertificate, type KeyPairPem } from '../pki.js';

const NS = 'switchboard-system';
const FORGED_NAMESPACE = 'forged';
const TARGET_PORTS = [31550, 31551, 31552, 31553, 31554];
const FORGED_REVIEWS = 500;
const log = (line: string) => process.stderr.write(`[forged-reviews] ${line}\n`);

interface Forged {
  readonly path: string;
  readonly port: number;
  readonly body: string;
}

/** What a forged POST got back: the HTTP status and the AdmissionReview answer, if any. */
interface ForgedAnswer {
  readonly status: number;
  readonly review?: AdmissionReviewResponse;
  /** The connection failed (status -1). */
  readonly error?: string;
}

/** The AdmissionReview kube-apiserver would send for a create of `object`, of kind `kind` in `group`. */
function forgedReview(kind: { group: string; version: string; kind: string }, object: unknown, namespace = ''): string {
  const request = { uid: randomUUID(), kind, operation: 'CREATE', namespace, object, dryRun: false };
  return JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
}

const forgedService = (i: number): Service => ({
  metadata: { name: `ghost-${i}`, namespace: FORGED_NAMESPACE, uid: randomUUID() },
  spec: { type: 'NodePort', clusterIP: `10.96.1.${i % 250}`, clusterIPs: [`10.96.1.${i % 250}`], ports: TARGET_PORTS.map((nodePort, p) => ({ name: `p${p}`, port: 80 + p, nodePort })) },
});

/** POSTs the forged review over TLS with `agent`: no server verification (an attacker would not), its certificate if any. */
function post(agent: Agent, target: Forged): Promise<ForgedAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: target.port, path: target.path, method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, review: res.statusCode === 200 ? (JSON.parse(text) as AdmissionReviewResponse) : undefined }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(target.body);
  });
}

/** Runs `count` tasks with at most `limit` in flight, in order of index. */
async function bounded<T>(count: number, limit: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

describe('forged admission reviews against authenticated webhooks', () => {
  let cp: LocalControlPlane;
  let client: KubeClient;
  let controller: SwitchboardProcess | undefined;
  const ports = { allocation: 0, pools: 0 };

  beforeAll(async () => {
    cp = await new LocalControlPlane({ kubeControllerManager: false, log }).start();
    client = KubeClient.fromFile(cp.kubeconfig, 'switchboard-test');
    for (const name of [NS, FORGED_NAMESPACE, 'legit']) await client.create(Namespaces, { metadata: { name } });
    ports.allocation = await freePort();
    ports.pools = await freePort();
    controller = spawnSwitchboard('controller', [
      ...replicaFlags(cp.kubeconfig, NS, 'c0'),
      '--endpointslice-controller=false',
      '--endpoints-controller=false',
      '--endpointslice-mirroring-controller=false',
      `--webhook-url=https://127.0.0.1:${ports.allocation}`,
      `--webhook-bind-address=127.0.0.1:${ports.allocation}`,
      `--webhook-client-ca-file=${cp.info.webhookClientCAFile}`,
      `--webhook-client-names=${WEBHOOK_CLIENT_NAME}`,
      `--pool-webhook-url=https://127.0.0.1:${ports.pools}`,
      `--pool-webhook-bind-address=127.0.0.1:${ports.pools}`,
      `--pool-webhook-client-ca-file=${cp.info.webhookClientCAFile}`,
      `--pool-webhook-client-names=${WEBHOOK_CLIENT_NAME}`,
      '--pool-webhook-failure-policy=Ignore',
    ]);
    await waitForOutput(controller, '"admission webhook serving"');
    // Both configurations are written (with their CA bundle) once the leader's servers answer.
    await eventually(async () => {
      const configured = async (rt: typeof MutatingWebhookConfigurations, name: string) =>
        Boolean((await client.get<KubeObject & { webhooks?: { clientConfig: { caBundle?: string } }[] }>(rt, name)).webhooks?.[0]?.clientConfig.caBundle);
      return (
        (await configured(MutatingWebhookConfigurations, 'switchboard-service-allocation')) &&
        (await configured(ValidatingWebhookConfigurations, 'switchboard-service-allocation')) &&
        (await configured(ValidatingWebhookConfigurations, POOL_CONFIGURATION))
      );
    }, 60_000);
  }, 180_000);

  afterAll(async () => {
    if (controller) await stopSwitchboard(controller, 'SIGKILL');
    client?.close();
    await cp?.stop();
  }, 60_000);

  it('gives a flood of forged reviews no claim and refuses no legitimate create', async () => {
    const serviceKind = { group: '', version: 'v1', kind: 'Service' };
    const poolKind = { group: 'switchboard.dev', version: 'v1beta1', kind: 'IPAddressPool' };
    // Without a certificate (the attack), with one of a CA of the caller's own, and with one of the cluster's CA
    // that is not the API server's (the admin's): none may pass.
    const foreignCA = await createCertificateAuthority('forger-ca', 1);
    const foreign = await issueCertificate(foreignCA, { commonName: WEBHOOK_CLIENT_NAME, usage: 'client', validDays: 1 });
    const admin: KeyPairPem = { certPem: await readFile(join(cp.info.dir, 'admin.crt'), 'utf8'), keyPem: await readFile(join(cp.info.dir, 'admin.key'), 'utf8') };
    const callers = [
      { name: 'no certificate', agent: new Agent({ keepAlive: true, rejectUnauthorized: false }), code: 401 },
      { name: 'foreign CA', agent: new Agent({ keepAlive: true, rejectUnauthorized: false, cert: foreign.certPem, key: foreign.keyPem }), code: 401 },
      { name: 'cluster CA, not the API server', agent: new Agent({ keepAlive: true, rejectUnauthorized: false, cert: admin.certPem, key: admin.keyPem }), code: 403 },
    ];
    const target = (i: number): Forged => {
      switch (i % 4) {
        case 0:
        case 1:
          return { path: MUTATE_PATH, port: ports.allocation, body: forgedReview(serviceKind, forgedService(i), FORGED_NAMESPACE) };
        case 2:
          return { path: VALIDATE_PATH, port: ports.allocation, body: forgedReview(serviceKind, forgedService(i), FORGED_NAMESPACE) };
        default:
          return {
            path: i % 8 === 3 ? POOL_PATH : L2_PATH,
            port: ports.pools,
            body: forgedReview(poolKind, { metadata: { name: `forged-${i}` }, spec: { addresses: ['198.51.100.0/24'] } }),
          };
      }
    };

    // The flood and the legitimate creates at once: 5 kubectl creates asking for the targeted ports, 40 API creates
    // of NodePort Services (dynamic ports) and 15 of ClusterIP Services.
    const flood = bounded(FORGED_REVIEWS, 16, async (i) => {
      const caller = callers[i % callers.length];
      return { caller, answer: await post(caller.agent, target(i)).catch((err: unknown): ForgedAnswer => ({ status: -1, error: String(err) })) };
    });
    const kubectlCreates = Promise.all(
      TARGET_PORTS.map((port, i) => cp.kubectl(['create', 'service', 'nodeport', `target-${i}`, '-n', 'legit', '--tcp=80:80', `--node-port=${port}`])),
    );
    const apiCreates = bounded(55, 8, async (i) => {
      const type = i < 40 ? 'NodePort' : 'ClusterIP';
      try {
        await client.create<Service>(Services, { metadata: { name: `legit-${i}`, namespace: 'legit' }, spec: { type, ports: [{ port: 80 }] } });
        return '';
      } catch (err) {
        return `legit-${i}: ${err instanceof ApiError ? (err.status.message ?? err.message) : String(err)}`;
      }
    });
    const [answers, kubectl, api] = await Promise.all([flood, kubectlCreates, apiCreates]);

    // No legitimate create was refused; the targeted ports went to the Services that asked for them.
    expect(kubectl.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    expect(api.filter(Boolean)).toEqual([]);
    for (const [i, port] of TARGET_PORTS.entries()) {
      const service = await client.get<Service>(Services, `target-${i}`, 'legit');
      expect(service.spec?.ports?.[0].nodePort).toBe(port);
    }

    // No claim names the forged namespace; every claim names a Service that exists (the legitimate ones, and the
    // `kubernetes` Service the repair controller adopts).
    const claims = (await client.listAll<ServiceClaim>(ServiceClaims)).items;
    expect(claims.filter((c) => c.spec.service.namespace === FORGED_NAMESPACE).map((c) => c.metadata.name)).toEqual([]);
    const services = new Set((await client.listAll<Service>(Services)).items.map((svc) => `${svc.metadata?.namespace}/${svc.metadata?.name}`));
    expect(claims.filter((c) => !services.has(`${c.spec.service.namespace}/${c.spec.service.name}`)).map((c) => c.metadata.name)).toEqual([]);
    expect(claims.length).toBeGreaterThanOrEqual(5 + 40 * 2 + 15);

    // Every forged review was answered with a denial naming why, and nothing was patched or allowed.
    const wrong = answers.filter(({ caller, answer }) => answer.status !== 200 || answer.review?.response.allowed !== false || answer.review.response.status?.code !== caller.code || answer.review.response.patch);
    expect(wrong.slice(0, 5).map(({ caller, answer }) => ({ caller: caller.name, answer }))).toEqual([]);
    expect(answers.find(({ caller }) => caller.code === 401)?.answer.review?.response.status?.message).toMatch(/^no client certificate: only kube-apiserver may call this webhook/);
    log(`${answers.length} forged reviews, all denied (401/403)`);

    for (const caller of callers) caller.agent.destroy();
  });

  it('still validates pools for the API server, whose certificate the pool webhook accepts', async () => {
    // The pool webhook (failurePolicy Ignore) would let this through if it refused the API server too.
    const overlapping: IPAddressPool = { metadata: { name: 'bad-pool' }, spec: { addresses: ['198.51.100.0/28', '198.51.100.8/29'] } };
    await expect(client.create(IPAddressPools, overlapping)).rejects.toMatchObject({ code: 422 });
    const good = await client.create<IPAddressPool>(IPAddressPools, { metadata: { name: 'good-pool' }, spec: { addresses: ['192.0.2.0/28'] } });
    expect(good.metadata?.name).toBe('good-pool');
  });
});
