// A deployment (config/default, or the Helm chart rendered from its defaults) on a control plane of its own (its
// webhooks, failurePolicy Fail, must not reach other suites):
// - rendered with the pinned tools, checked for what the kind suite and the product brief rely on;
// - accepted by the API server (server-side dry run), then applied for real (no kubelet: pods never run, the objects
//   are what is checked);
// - `switchboard controller` and `switchboard speaker` run with the Deployment's and DaemonSet's own args, under
//   their ServiceAccounts' tokens, through the shared end-to-end scenarios and a scrape of their secured /metrics;
//   the API server's audit log then shows every request each ServiceAccount made, and none may have been refused
//   (403). OwnerReferencesPermissionEnforcement is on, so the finalizers rules are exercised too.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDuration } from '../../cmd/flags.js';
import { allocatorsJob } from '../../cmd/jobs/allocators.js';
import { KubeClient } from '../../controllers/runtime/client.js';
import type { KubeObject } from '../../api/wire.js';
import { MutatingWebhookConfigurations, ValidatingWebhookConfigurations } from '../../api/resources.js';
import { canonical } from '../../controllers/runtime/webhook/configuration.js';
import { desiredConfigurations } from '../../controllers/serviceallocation/webhook-configurations.js';
import { WEBHOOK_CONFIGURATION as POOL_WEBHOOK_CONFIGURATION, poolValidationConfigurations } from '../../controllers/loadbalancer/webhook.js';
import { loadBalancerJob, parseServiceRef } from '../../cmd/jobs/loadbalancer.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { freePort } from '../../cmd/up/controlplane/processes.js';
import { eventually, serviceAccountKubeconfig } from '../jest/cluster.js';
import { leads, requireBuiltSwitchboard, spawnSwitchboard, stopSwitchboard, waitForOutput, type SwitchboardProcess } from '../jest/switchboard-process.js';
import { runScenario, scenarios } from '../scenarios/scenarios.js';
import { localEnv, prepareLocalNode } from './local-env.js';
import { expandArgs, find, flagValue, readYamlFile, withFlags, type Container, type Manifest, type PodTemplateOwner, type Rendered } from './manifests.js';

const NS = 'switchboard-system';
const NODE = 'e2e-node';
const SA = { controller: 'switchboard-controller', speaker: 'switchboard-speaker' } as const;
const userOf = (sa: string) => `system:serviceaccount:${NS}:${sa}`;
const log = (line: string) => process.stderr.write(`[deploy] ${line}\n`);
const METRICS_READER = 'switchboard-metrics-reader';
/** The ServiceAccount that scrapes /metrics in the test (as Prometheus's would). */
const SCRAPER = 'e2e-scraper';

/** The port a process serves /metrics on (it logs it: the args bind port 0). */
function metricsPortOf(p: SwitchboardProcess): number {
  const line = p.output.find((l) => l.includes('"serving metrics and health"'));
  if (!line) throw new Error(`${p.id} serves no metrics`);
  return (JSON.parse(line) as { port: number }).port;
}

/** GET /metrics over HTTPS (the self-signed certificate unverified, as a ServiceMonitor's insecureSkipVerify). */
function scrape(port: number, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/metrics', rejectUnauthorized: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

/** Metadata of every request the two ServiceAccounts make; nothing of anyone else. */
const AUDIT_POLICY = JSON.stringify({
  apiVersion: 'audit.k8s.io/v1',
  kind: 'Policy',
  omitStages: ['RequestReceived'],
  rules: [{ level: 'Metadata', users: Object.values(SA).map(userOf) }, { level: 'None' }],
});

interface AuditEvent {
  stage: string;
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; apiGroup?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number; message?: string };
  /** authorization.k8s.io/decision: "allow" or "forbid", RBAC's answer. */
  annotations?: Record<string, string>;
}

/**
 * The one 403 that is no missing permission: NamespaceLifecycle refusing new objects (here Events of a scenario's
 * last moments) in a namespace being deleted.
 */
const TERMINATING = 'because it is being terminated';

/** Refused by RBAC, or by an admission plugin for want of a permission (OwnerReferencesPermissionEnforcement). */
const refusal = (e: AuditEvent): boolean =>
  e.annotations?.['authorization.k8s.io/decision'] !== 'allow' || (e.responseStatus?.code === 403 && !(e.responseStatus.message ?? '').includes(TERMINATING));

interface ClusterRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

const container = (owner: PodTemplateOwner): Container => owner.spec.template.spec.containers[0];

/** The values a container's $(VAR) args may use: its downward-API env as the kubelet would fill it in. */
function downwardValues(c: Container, pod: string): Record<string, string> {
  // The node's IP is loopback here: the speaker's heartbeats (HEARTBEAT_ADDRESS) bind there.
  const fields: Record<string, string> = { 'metadata.namespace': NS, 'metadata.name': pod, 'spec.nodeName': NODE, 'status.hostIP': '127.0.0.1' };
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? fields[e.valueFrom?.fieldRef?.fieldPath ?? ''] ?? '']));
}

/** Webhooks without their caBundle (the operator's CA), for comparison with the operator-managed reference. */
function withoutCABundle(webhooks: unknown): unknown {
  return (webhooks as { clientConfig: Record<string, unknown> }[]).map(({ clientConfig: { caBundle: _caBundle, ...clientConfig }, ...rest }) => ({ ...rest, clientConfig }));
}

/** The reference webhooks as they stand when the API server reaches the webhook at `baseUrl` instead of the Service. */
function atUrl(webhooks: unknown, baseUrl: string): unknown {
  return (webhooks as { clientConfig: { service: { path: string } } }[]).map((w) => ({ ...w, clientConfig: { url: `${baseUrl}${w.clientConfig.service.path}` } }));
}

export interface DeploymentSuite {
  /** What is deployed, e.g. "config/default". */
  title: string;
  /** Renders the manifests to apply (CRDs included) with the control plane's pinned tools. */
  render(cp: LocalControlPlane): Promise<Rendered>;
  /** Other renderings (other values, overlays) whose controller and speaker args must be flags the executable knows. */
  variants?(cp: LocalControlPlane): Promise<{ name: string; objects: Manifest[] }[]>;
}

/**
 * The deployment on a control plane of its own: its objects checked, applied (dry run, real, no-op re-apply), its
 * RBAC narrow, and the controller and speaker run with its args under its ServiceAccounts through the shared
 * scenarios and a scrape of the secured /metrics, with no request refused (audit log).
 */
export function describeDeployment(suite: DeploymentSuite): void {
  describe(`${suite.title} on a control plane of its own`, () => {
    let cp: LocalControlPlane;
    let admin: KubeClient;
    let dir: string;
    let rendered: Rendered;
    let deployment: PodTemplateOwner;
    let daemonSet: PodTemplateOwner;
    const processes: SwitchboardProcess[] = [];
    const ports = { webhook: 0, poolWebhook: 0 };

    beforeAll(async () => {
      requireBuiltSwitchboard();
      dir = await mkdtemp(join(tmpdir(), 'switchboard-deploy-'));
      await writeFile(join(dir, 'audit-policy.json'), AUDIT_POLICY);
      cp = await new LocalControlPlane({
        kubeControllerManager: false,
        extraApiServerArgs: [
          '--enable-admission-plugins=OwnerReferencesPermissionEnforcement',
          `--audit-policy-file=${join(dir, 'audit-policy.json')}`,
          `--audit-log-path=${join(dir, 'audit.log')}`,
        ],
        log,
      }).start();
      admin = KubeClient.fromFile(cp.kubeconfig, 'switchboard-test');
      rendered = await suite.render(cp);
      deployment = find<PodTemplateOwner>(rendered.objects, 'Deployment', 'switchboard-controller');
      daemonSet = find<PodTemplateOwner>(rendered.objects, 'DaemonSet', 'switchboard-speaker');
    }, 120_000);

    afterAll(async () => {
      await Promise.all(processes.map((p) => stopSwitchboard(p, 'SIGKILL')));
      admin?.close();
      await cp?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    }, 60_000);

    it('renders one image, namespaced objects in switchboard-system, RBAC without wildcards, and consistent ports', () => {
      const clusterScoped = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding']);
      for (const o of rendered.objects) {
        expect({ object: `${o.kind}/${o.metadata.name}`, namespace: o.metadata.namespace }).toEqual({ object: `${o.kind}/${o.metadata.name}`, namespace: clusterScoped.has(o.kind) ? undefined : NS });
      }
      // One image for both components: the one e2e/kind/run.sh builds and loads (it reads it from these manifests).
      const images = new Set(rendered.objects.flatMap((o) => ((o as PodTemplateOwner).spec?.template?.spec?.containers ?? []).map((c) => c.image)));
      expect([...images]).toEqual(['switchboard:dev']);

      const rules = rendered.objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap((o) => (o.rules as ClusterRule[]).map((r) => ({ role: `${o.kind}/${o.metadata.name}`, ...r })));
      const wildcards = rules.filter((r) => [...(r.verbs ?? []), ...(r.resources ?? []), ...(r.apiGroups ?? []), ...(r.resourceNames ?? []), ...(r.nonResourceURLs ?? [])].some((v) => v.includes('*')));
      expect(wildcards).toEqual([]);
      // Non-resource URLs in one rule only: reading the secured /metrics.
      expect(rules.filter((r) => r.nonResourceURLs)).toEqual([{ role: `ClusterRole/${METRICS_READER}`, nonResourceURLs: ['/metrics'], verbs: ['get'] }]);

      // The controller: 2 replicas, its own ServiceAccount, non-root with a read-only root filesystem, probes, limits.
      const controller = container(deployment);
      expect(deployment.spec.replicas).toBe(2);
      expect(deployment.spec.template.spec.serviceAccountName).toBe(SA.controller);
      expect(controller.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(deployment.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true });
      expect(Object.keys(controller).filter((k) => k.endsWith('Probe')).sort()).toEqual(['livenessProbe', 'readinessProbe', 'startupProbe']);
      expect(controller.resources).toMatchObject({ requests: { cpu: expect.any(String), memory: expect.any(String) }, limits: { memory: expect.any(String) } });
      const args = controller.args ?? [];
      expect(flagValue(args, 'leader-elect')).toBe('true');
      const pdb = find(rendered.objects, 'PodDisruptionBudget', 'switchboard-controller');
      expect(pdb.spec).toEqual({ minAvailable: 1, selector: deployment.spec.selector });

      // The webhook Service reaches the ports the args bind, and is the one the args name.
      const portOf = (name: string) => controller.ports?.find((p) => p.name === name)?.containerPort;
      const service = find(rendered.objects, 'Service', flagValue(args, 'webhook-service-name') ?? '');
      const servicePorts = (service.spec as { ports: { port: number; targetPort: string }[] }).ports;
      const targetOf = (port: number) => portOf(servicePorts.find((p) => p.port === port)?.targetPort ?? '');
      expect(targetOf(Number(flagValue(args, 'webhook-service-port')))).toBe(Number(flagValue(args, 'webhook-bind-address')?.split(':').pop()));
      const poolService = expandArgs([flagValue(args, 'pool-webhook-service') ?? ''], downwardValues(controller, 'p'))[0];
      expect(poolService.split(/[/:]/)).toEqual([NS, service.metadata.name, expect.any(String)]);
      expect(targetOf(Number(poolService.split(':')[1]))).toBe(Number(flagValue(args, 'pool-webhook-bind-address')?.split(':').pop()));
      expect(deployment.spec.template.metadata.labels).toMatchObject((service.spec as { selector: Record<string, string> }).selector);
      const metrics = find(rendered.objects, 'Service', 'switchboard-controller-metrics');
      expect((metrics.spec as { ports: { targetPort: string }[] }).ports.map((p) => portOf(p.targetPort))).toEqual([Number(flagValue(args, 'metrics-bind-address')?.split(':').pop())]);

      // The NetworkPolicy: it selects the controller's pods and admits the webhook ports the args bind from address
      // blocks only (outside the pod network), never from pods or namespaces; every other port of the pod stays open.
      const policy = find(rendered.objects, 'NetworkPolicy', 'switchboard-webhook');
      const policySpec = policy.spec as { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: { ports: { port: string }[]; from?: Record<string, unknown>[] }[] };
      expect(deployment.spec.template.metadata.labels).toMatchObject(policySpec.podSelector.matchLabels);
      expect(policySpec.policyTypes).toEqual(['Ingress']);
      const webhookPorts = [Number(flagValue(args, 'webhook-bind-address')?.split(':').pop()), Number(flagValue(args, 'pool-webhook-bind-address')?.split(':').pop())];
      const rulesFor = (containerPort: number) => policySpec.ingress.filter((r) => r.ports.some((p) => portOf(p.port) === containerPort));
      for (const port of webhookPorts) {
        const rules = rulesFor(port);
        expect({ port, rules: rules.length }).toEqual({ port, rules: 1 });
        expect({ port, peers: rules[0].from?.map((peer) => Object.keys(peer)) }).toEqual({ port, peers: [['ipBlock'], ['ipBlock']] });
      }
      for (const { containerPort } of controller.ports ?? []) {
        if (webhookPorts.includes(containerPort)) continue;
        expect({ containerPort, from: rulesFor(containerPort).map((r) => r.from) }).toEqual({ containerPort, from: [undefined] });
      }

      // The speaker: hostNetwork, NET_RAW (ARP/NDP) and NET_ADMIN (handover forwarding) and nothing else, on control-plane nodes too.
      const speaker = container(daemonSet);
      expect(daemonSet.spec.template.spec).toMatchObject({ hostNetwork: true, serviceAccountName: SA.speaker });
      expect(speaker.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['NET_RAW', 'NET_ADMIN'] } });
      expect(daemonSet.spec.template.spec.tolerations).toEqual(expect.arrayContaining([expect.objectContaining({ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' })]));
    });

    it('passes only flags the executable knows, in every variant too', async () => {
      const variants = [{ name: suite.title, objects: rendered.objects }, ...((await suite.variants?.(cp)) ?? [])];
      // One run per distinct command line (variants share most of them): each is a process start.
      const commandLines = new Map<string, { variant: string; kind: string; args: string[] }>();
      for (const variant of variants) {
        const owners = variant.objects.filter((o): o is PodTemplateOwner => o.kind === 'Deployment' || o.kind === 'DaemonSet');
        expect({ variant: variant.name, deployments: owners.filter((o) => o.kind === 'Deployment').length }).toEqual({ variant: variant.name, deployments: 1 });
        for (const owner of owners) {
          const c = container(owner);
          const args = [...expandArgs(c.args ?? [], downwardValues(c, 'p')), '--help'];
          if (!commandLines.has(args.join(' '))) commandLines.set(args.join(' '), { variant: variant.name, kind: owner.kind, args });
        }
      }
      for (const { variant, kind, args } of commandLines.values()) {
        const help = spawnSwitchboard(`${kind} --help`, args);
        await new Promise((resolve) => help.child.once('exit', resolve));
        expect({ variant, kind, code: help.child.exitCode, output: help.child.exitCode === 0 ? '' : help.output.join('\n') }).toEqual({ variant, kind, code: 0, output: '' });
      }
    }, 600_000);

    it('is accepted by the API server: a server-side dry run, then a real apply, then a no-op re-apply', async () => {
      // A dry run cannot create the namespace the other objects go into: dry-run the cluster-scoped objects, create the
      // namespace, then dry-run everything.
      const namespace = find(rendered.objects, 'Namespace', NS);
      const clusterScoped = rendered.objects.filter((o) => !o.metadata.namespace);
      const dryCluster = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: clusterScoped }));
      expect({ code: dryCluster.code, stderr: dryCluster.stderr }).toEqual({ code: 0, stderr: '' });
      const ns = await cp.kubectl(['apply', '-f', '-'], JSON.stringify(namespace));
      expect(ns.code).toBe(0);
      const dry = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], rendered.text);
      expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: 0, stderr: '' });
      expect(dry.stdout.trim().split('\n')).toHaveLength(rendered.objects.length);

      const applied = await cp.kubectl(['apply', '-f', '-'], rendered.text);
      log(`kubectl apply:\n${applied.stdout}`);
      expect({ code: applied.code, stderr: applied.stderr }).toEqual({ code: 0, stderr: '' });
      const lines = applied.stdout.trim().split('\n');
      expect(lines).toHaveLength(rendered.objects.length);
      expect(lines.filter((l) => !/ (created|configured|unchanged)$/.test(l))).toEqual([]);
      const stored = await cp.kubectl(['get', '-f', '-', '-o', 'name'], rendered.text);
      expect({ code: stored.code, stderr: stored.stderr, count: stored.stdout.trim().split('\n').length }).toEqual({ code: 0, stderr: '', count: rendered.objects.length });
      // Stable: nothing the API server defaults or rewrites makes a second apply change anything.
      const diff = await cp.kubectl(['diff', '-f', '-'], rendered.text);
      expect({ code: diff.code, diff: diff.stdout, stderr: diff.stderr }).toEqual({ code: 0, diff: '', stderr: '' });
      const established = await cp.kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd', '-l', 'app.kubernetes.io/part-of=switchboard']);
      expect(established.code).toBe(0);
    });

    it('grants the ServiceAccounts nothing broader than their jobs', async () => {
      const can = async (sa: string, ...args: string[]) => (await cp.kubectl(['auth', 'can-i', ...args, `--as=${userOf(sa)}`])).stdout.trim();
      expect(await can(SA.controller, 'list', 'secrets', '--all-namespaces')).toBe('no');
      expect(await can(SA.controller, 'get', 'secrets/other', '-n', NS)).toBe('no');
      expect(await can(SA.controller, 'get', 'secrets/switchboard-webhook-cert', '-n', NS)).toBe('yes');
      expect(await can(SA.controller, 'create', 'pods', '-n', 'default')).toBe('no');
      expect(await can(SA.controller, 'update', 'customresourcedefinitions')).toBe('no');
      expect(await can(SA.controller, 'update', 'mutatingwebhookconfigurations/someone-elses')).toBe('no');
      expect(await can(SA.speaker, 'list', 'secrets', '-n', NS)).toBe('no');
      expect(await can(SA.speaker, 'update', 'services/status', '-n', 'default')).toBe('no');
      expect(await can(SA.speaker, 'create', 'leases', '-n', 'default')).toBe('no');
      // They review tokens and access for their metrics port, but may not read anyone's /metrics themselves.
      expect(await can(SA.controller, 'create', 'tokenreviews')).toBe('yes');
      expect(await can(SA.speaker, 'create', 'subjectaccessreviews')).toBe('yes');
      expect(await can(SA.controller, 'get', '/metrics')).toBe('no');
    });

    it('runs the controller and the speaker with their manifests\' args under their ServiceAccounts\' tokens', async () => {
      const token = (sa: string) => serviceAccountKubeconfig(admin, cp.kubeconfig, NS, sa, join(dir, `${sa}.kubeconfig`));
      await prepareLocalNode(admin, NODE);
      ports.webhook = await freePort();
      ports.poolWebhook = await freePort();

      // The Deployment's args; only what reaches the webhooks changes (the API server dials URLs here, not a Service).
      const controller = container(deployment);
      const controllerArgs = withFlags(expandArgs(controller.args ?? [], downwardValues(controller, 'controller-0')), {
        kubeconfig: await token(SA.controller),
        'webhook-service-name': null,
        'webhook-service-port': null,
        'webhook-url': `https://127.0.0.1:${ports.webhook}`,
        'webhook-bind-address': `127.0.0.1:${ports.webhook}`,
        'pool-webhook-service': null,
        'pool-webhook-url': `https://127.0.0.1:${ports.poolWebhook}`,
        'pool-webhook-bind-address': `127.0.0.1:${ports.poolWebhook}`,
        'metrics-bind-address': '127.0.0.1:0',
      });
      log(`switchboard ${controllerArgs.join(' ')}`);
      const controllerProcess = spawnSwitchboard('controller', controllerArgs, downwardValues(controller, 'controller-0'));
      processes.push(controllerProcess);

      // The DaemonSet's args, on no interface (no raw socket opened on this machine's network).
      const speaker = container(daemonSet);
      const speakerArgs = withFlags(expandArgs(speaker.args ?? [], downwardValues(speaker, 'speaker-0')), {
        kubeconfig: await token(SA.speaker),
        interfaces: 'sb-e2e-none0',
        'metrics-bind-address': '127.0.0.1:0',
      });
      log(`switchboard ${speakerArgs.join(' ')}`);
      const speakerProcess = spawnSwitchboard('speaker', speakerArgs, downwardValues(speaker, 'speaker-0'));
      processes.push(speakerProcess);

      await waitForOutput(controllerProcess, '"admission webhook serving"');
      await eventually(() => leads(controllerProcess), 30_000);
      await waitForOutput(speakerProcess, '"speaker starting"');
      // Scenarios start once the allocation webhook is registered (the leader does it once its server answers).
      await eventually(async () => {
        const mutating = await admin.get<KubeObject & { webhooks?: { clientConfig: { caBundle?: string } }[] }>(MutatingWebhookConfigurations, 'switchboard-service-allocation');
        return Boolean(mutating.webhooks?.[0]?.clientConfig.caBundle);
      }, 30_000);
    });

    describe.each(scenarios.map((s) => [s.title, s] as const))('scenario: %s', (_title, scenario) => {
      it('passes', async () => {
        const env = localEnv({ controlPlane: cp, client: admin, node: NODE, loadBalancerRange: '192.0.2.0/28', log });
        await runScenario(env, scenario);
      });
    });

    it('serves /metrics over HTTPS to a ServiceAccount bound to the metrics-reader ClusterRole only', async () => {
      // Both processes review the scraper's token under their own ServiceAccounts (their RBAC: the audit check below).
      await admin.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SCRAPER } });
      const tokenOf = async () =>
        (await admin.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${SCRAPER}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} })).status.token;
      const token = await tokenOf();
      for (const p of processes) {
        const port = metricsPortOf(p);
        expect({ process: p.id, status: (await scrape(port)).status }).toEqual({ process: p.id, status: 401 });
        expect({ process: p.id, status: (await scrape(port, token)).status }).toEqual({ process: p.id, status: 403 });
      }
      await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: SCRAPER },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: METRICS_READER },
        subjects: [{ kind: 'ServiceAccount', name: SCRAPER, namespace: NS }],
      });
      // A new token: the denial of the first one is cached for 10 s.
      const allowed = await tokenOf();
      for (const p of processes) {
        const answer = await eventually(async () => {
          const r = await scrape(metricsPortOf(p), allowed);
          return r.status === 200 && r;
        }, 30_000, 500);
        expect({ process: p.id, body: answer.body }).toEqual({ process: p.id, body: expect.stringMatching(/^# HELP switchboard_api_requests_total /m) });
      }
    });

    it('writes the webhook configurations config/webhook/operator-managed shows', async () => {
      const reference = [...readYamlFile('config/webhook/operator-managed/service-allocation.yaml'), ...readYamlFile('config/webhook/operator-managed/pool-validation.yaml')];
      const args = container(deployment).args ?? [];
      const flag = (name: string) => flagValue(args, name) ?? String(allocatorsJob.flags[name].default);
      // What the code wants for the manifests' flags is the reference, but for the caBundle.
      const poolFlag = (name: string) => expandArgs([flagValue(args, name) ?? String(loadBalancerJob.flags[name].default)], downwardValues(container(deployment), 'p'))[0];
      const desired = [
        ...desiredConfigurations(
          {
            configurationName: flag('webhook-configuration-name'),
            endpoint: { service: { namespace: NS, name: flag('webhook-service-name'), port: Number(flag('webhook-service-port')) } },
            timeoutSeconds: Math.round(parseDuration(flag('webhook-timeout'), 'webhook-timeout') / 1000),
          },
          '',
        ),
        ...poolValidationConfigurations(
          { endpoint: { service: parseServiceRef(poolFlag('pool-webhook-service')) }, failurePolicy: poolFlag('pool-webhook-failure-policy') === 'Fail' ? 'Fail' : 'Ignore' },
          '',
        ),
      ];
      expect(desired).toHaveLength(3);
      for (const { rt, object } of desired) {
        const ref = find(reference, rt.kind, object.metadata?.name ?? '');
        expect(canonical({ metadata: ref.metadata, webhooks: ref.webhooks })).toBe(canonical({ metadata: object.metadata, webhooks: withoutCABundle(object.webhooks) }));
      }
      // What the running operator wrote (URL form here) is the reference, but for the caBundle and the URL.
      const live = [
        { rt: MutatingWebhookConfigurations, name: flag('webhook-configuration-name'), url: `https://127.0.0.1:${ports.webhook}` },
        { rt: ValidatingWebhookConfigurations, name: flag('webhook-configuration-name'), url: `https://127.0.0.1:${ports.webhook}` },
        { rt: ValidatingWebhookConfigurations, name: POOL_WEBHOOK_CONFIGURATION, url: `https://127.0.0.1:${ports.poolWebhook}` },
      ];
      for (const { rt, name, url } of live) {
        const stored = await admin.get<KubeObject & { webhooks: unknown }>(rt, name);
        const ref = find(reference, rt.kind, name);
        expect({ name, labels: stored.metadata?.labels, webhooks: JSON.parse(canonical(withoutCABundle(stored.webhooks))) as unknown }).toEqual({
          name,
          labels: ref.metadata.labels,
          webhooks: JSON.parse(canonical(atUrl(ref.webhooks, url))) as unknown,
        });
      }
      // The operator owns them: an edit is put back (what `kubectl apply` of such a manifest would be up against).
      const edit = [{ op: 'replace', path: '/webhooks/0/timeoutSeconds', value: 29 }];
      await admin.patch(MutatingWebhookConfigurations, flag('webhook-configuration-name'), edit, 'json');
      await eventually(async () => {
        const stored = await admin.get<KubeObject & { webhooks: { timeoutSeconds: number }[] }>(MutatingWebhookConfigurations, flag('webhook-configuration-name'));
        return stored.webhooks[0].timeoutSeconds === 10;
      }, 30_000);
    });

    it('refused no request of either ServiceAccount (RBAC), and neither logged a refusal', async () => {
      // A graceful stop exercises the release paths too (leader Lease, speaker Lease deletion).
      const stopping = Promise.all(processes.map((p) => stopSwitchboard(p, 'SIGTERM')));
      const late = await Promise.race([stopping.then(() => []), new Promise<SwitchboardProcess[]>((resolve) => setTimeout(() => resolve(processes.filter((p) => p.child.exitCode === null)), 60_000).unref())]);
      expect(late.map((p) => ({ process: p.id, stillRunning: p.output.slice(-15) }))).toEqual([]);
      const events = (await readFile(join(dir, 'audit.log'), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as AuditEvent)
        .filter((e) => e.stage === 'ResponseComplete' || e.stage === 'ResponseStarted');
      for (const sa of Object.values(SA)) {
        const mine = events.filter((e) => e.user.username === userOf(sa));
        const used = [...new Set(mine.map((e) => `${e.verb} ${e.objectRef?.apiGroup || 'core'}/${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}${e.objectRef?.namespace === NS ? ` (in ${NS})` : ''}`))].sort();
        log(`${sa}: ${mine.length} requests; used:\n  ${used.join('\n  ')}`);
        expect(mine.length).toBeGreaterThan(0);
        const refused = mine.filter(refusal).map((e) => `${e.verb} ${JSON.stringify(e.objectRef)}: ${e.responseStatus?.message ?? ''}`);
        expect({ sa, refused }).toEqual({ sa, refused: [] });
      }
      for (const p of processes) {
        const forbidden = p.output.filter((l) => /\b403\b|forbidden/i.test(l) && !l.includes(TERMINATING));
        expect({ process: p.id, forbidden }).toEqual({ process: p.id, forbidden: [] });
        expect({ process: p.id, exitCode: p.child.exitCode }).toEqual({ process: p.id, exitCode: 0 });
      }
    });
  });
}
