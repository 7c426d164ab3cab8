// The Helm chart (charts/switchboard), with helm built from its Go module (cmd/up/controlplane/binaries.ts):
// - `helm lint --strict` passes, and NOTES.txt renders;
// - with its default values it renders config/default object for object: the only differences allowed are Helm's own
//   labels and the Namespace (rendered only with namespace.create=true, as `helm install` needs it to exist first);
//   with webhook.clientAuth.enabled it renders what the kind suite's overlay (config/components/webhook-client-auth)
//   does; every other value changes exactly what it names (checked below), and every variant's args are flags the
//   executable knows;
// - its rendering then goes through the deployment suite (e2e/deploy/deployment-suite.ts): applied to a control plane
//   of its own, the controller and speaker run under the chart's ServiceAccounts through the scenarios, no 403.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { ensureBinaries, ensureHelm } from '../../cmd/up/controlplane/binaries.js';
import { describeDeployment } from './deployment-suite.js';
import { createNamespace, controlPlaneInfo, deleteNamespace, testClient } from '../jest/cluster.js';
import { find, flagValue, renderChart, renderKustomization, repoPath, runCommand, runHelm, type Manifest, type PodTemplateOwner } from './manifests.js';
import type { Kubectl } from '../scenarios/env.js';

const NS = 'switchboard-system';
const log = (line: string) => process.stderr.write(`[helm] ${line}\n`);
/** Labels Helm charts put on every object and kustomize does not: the one documented difference in objects. */
const HELM_LABELS = ['app.kubernetes.io/managed-by', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'helm.sh/chart'];

let helmPath: Promise<string> | undefined;
/** helm, built once per test file (CI's setup has built it: `npm run controlplane:build`). */
const helm = (): Promise<string> => (helmPath ??= ensureHelm(log));

/** The objects by kind/namespace/name, without Helm's labels. */
function byIdentity(objects: readonly Manifest[]): Map<string, Manifest> {
  const result = new Map<string, Manifest>();
  for (const o of objects) {
    const copy = structuredClone(o);
    for (const key of HELM_LABELS) delete copy.metadata.labels?.[key];
    const id = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    expect({ duplicate: result.has(id) ? id : undefined }).toEqual({ duplicate: undefined });
    result.set(id, copy);
  }
  return result;
}

/** Checks that both renderings hold the same objects, field for field. */
function expectSameObjects(chart: readonly Manifest[], kustomize: readonly Manifest[]): void {
  const a = byIdentity(chart);
  const b = byIdentity(kustomize);
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [id, object] of b) expect({ id, object: a.get(id) }).toEqual({ id, object });
}

const controllerOf = (objects: readonly Manifest[]) => find<PodTemplateOwner>(objects, 'Deployment', 'switchboard-controller');
const speakerOf = (objects: readonly Manifest[]) => find<PodTemplateOwner>(objects, 'DaemonSet', 'switchboard-speaker');
const argsOf = (owner: PodTemplateOwner) => owner.spec.template.spec.containers[0].args ?? [];
const names = (objects: readonly Manifest[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();

/** Values that change something, and what they must change. */
const VARIANTS: Record<string, Record<string, unknown>> = {
  custom: {
    image: { repository: 'registry.example/switchboard', tag: 'v1.2.3', pullPolicy: 'Always' },
    controller: {
      replicas: 3,
      resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { memory: '1Gi' } },
      leaderElection: { enabled: true, leaseDuration: '30s', renewDeadline: '20s', retryPeriod: '4s' },
      extraArgs: ['--service-node-port-range=30000-31000'],
    },
    webhook: { timeout: '5s', pool: { failurePolicy: 'Fail' }, networkPolicy: { ipv4PodCIDRs: ['10.42.0.0/16'], ipv6PodCIDRs: [] } },
    metrics: { certSecret: 'switchboard-metrics-tls' },
    speaker: {
      interfaces: ['eth0', 'eth1'],
      nodeSelector: { 'switchboard.dev/speaker': 'true' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'edge', effect: 'NoSchedule' }],
    },
    pools: [{ name: 'default', spec: { addresses: ['192.0.2.0/28'] } }],
    l2Advertisements: [{ name: 'default', spec: { ipAddressPools: ['default'] } }],
  },
  'no speaker': { jobs: { speaker: false } },
  'no load balancer': { jobs: { loadBalancer: false, speaker: false } },
  'no allocation': { jobs: { allocation: false } },
  'endpoint controllers only': { jobs: { allocation: false, loadBalancer: false, speaker: false }, webhook: { clientAuth: { enabled: true } } },
  'no endpoint controllers': { jobs: { endpointSlice: false, endpoints: false, endpointSliceMirroring: false } },
  'plain HTTP metrics, no leader election': { metrics: { secure: false, serviceMonitor: { enabled: true } }, controller: { replicas: 1, leaderElection: { enabled: false } } },
  'service monitor': { metrics: { serviceMonitor: { enabled: true, labels: { release: 'prom' } } } },
};

describe('charts/switchboard', () => {
  let kubectl: Kubectl;

  beforeAll(async () => {
    const binaries = await ensureBinaries(log);
    kubectl = (args) => runCommand(binaries.kubectl, args);
    await helm();
  }, 1_800_000);

  it('passes helm lint --strict, with its defaults and with every variant', async () => {
    for (const values of [{}, ...Object.values(VARIANTS)]) {
      const lint = await runHelm(await helm(), ['lint', '--strict', repoPath('charts/switchboard'), '--namespace', NS], values);
      expect({ values, code: lint.code, out: lint.code === 0 ? '' : lint.stdout + lint.stderr }).toEqual({ values, code: 0, out: '' });
    }
  });

  it('renders NOTES.txt with how to check it works, and warns of a namespace without the privileged label', async () => {
    // A dry run against the shared control plane, where `lookup` finds the (unlabelled) namespace.
    const client = testClient();
    const ns = await createNamespace(client, 'helm-notes');
    try {
      const install = await runCommand(await helm(), ['install', 'switchboard', repoPath('charts/switchboard'), '--namespace', ns, '--dry-run=server', '--kubeconfig', controlPlaneInfo().kubeconfig]);
      expect({ code: install.code, stderr: install.stderr }).toEqual({ code: 0, stderr: '' });
      const notes = install.stdout.slice(install.stdout.indexOf('NOTES:'));
      expect(notes).toContain(`kubectl -n ${ns} rollout status deployment/switchboard-controller`);
      expect(notes).toContain('kubectl get mutatingwebhookconfiguration switchboard-service-allocation');
      expect(notes).toContain('--clusterrole=switchboard-metrics-reader');
      expect(notes).toContain(`WARNING: namespace ${ns} is not labelled pod-security.kubernetes.io/enforce=privileged`);
    } finally {
      await deleteNamespace(client, ns);
      client.close();
    }
  });

  it('renders config/default with its defaults (but Helm\'s labels and the Namespace)', async () => {
    const kustomize = (await renderKustomization(kubectl, 'config/default')).objects;
    expectSameObjects((await renderChart(await helm(), NS, { namespace: { create: true } })).objects, kustomize);
    expectSameObjects((await renderChart(await helm(), NS)).objects, kustomize.filter((o) => o.kind !== 'Namespace'));
    // The CRDs (--include-crds) were among them: the chart's crds/ are crds/'s files (crds/crds.test.ts).
    expect(kustomize.filter((o) => o.kind === 'CustomResourceDefinition')).toHaveLength(4);
  });

  it('renders the kind suite\'s overlay (webhook client authentication) with webhook.clientAuth.enabled', async () => {
    const kustomize = (await renderKustomization(kubectl, 'e2e/kind/deploy')).objects;
    expectSameObjects((await renderChart(await helm(), NS, { namespace: { create: true }, webhook: { clientAuth: { enabled: true } } })).objects, kustomize);
  });

  it('changes what each value names', async () => {
    const defaults = (await renderChart(await helm(), NS)).objects;
    const render = async (name: string) => (await renderChart(await helm(), NS, VARIANTS[name])).objects;

    const custom = await render('custom');
    const controller = controllerOf(custom);
    const speaker = speakerOf(custom);
    for (const owner of [controller, speaker]) {
      expect(owner.spec.template.spec.containers[0]).toMatchObject({ image: 'registry.example/switchboard:v1.2.3', imagePullPolicy: 'Always' });
    }
    expect(controller.spec.replicas).toBe(3);
    expect(controller.spec.template.spec.containers[0].resources).toEqual({ requests: { cpu: '200m', memory: '256Mi' }, limits: { memory: '1Gi' } });
    const args = argsOf(controller);
    expect(args.filter((a) => !argsOf(controllerOf(defaults)).includes(a))).toEqual([
      '--leader-elect-lease-duration=30s',
      '--leader-elect-renew-deadline=20s',
      '--leader-elect-retry-period=4s',
      '--metrics-cert-dir=/etc/switchboard/metrics-tls',
      '--webhook-timeout=5s',
      '--pool-webhook-failure-policy=Fail',
      '--service-node-port-range=30000-31000',
    ]);
    expect(speaker.spec.template.spec).toMatchObject({ nodeSelector: { 'switchboard.dev/speaker': 'true' }, tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'edge', effect: 'NoSchedule' }] });
    expect(flagValue(argsOf(speaker), 'interfaces')).toBe('eth0,eth1');
    for (const owner of [controller, speaker]) {
      expect(flagValue(argsOf(owner), 'metrics-cert-dir')).toBe('/etc/switchboard/metrics-tls');
      expect(owner.spec.template.spec.volumes).toEqual(expect.arrayContaining([{ name: 'metrics-tls', secret: { secretName: 'switchboard-metrics-tls' } }]));
    }
    const policy = find(custom, 'NetworkPolicy', 'switchboard-webhook').spec as { ingress: { from?: { ipBlock: { cidr: string; except?: string[] } }[] }[] };
    expect(policy.ingress[0].from).toEqual([{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.42.0.0/16'] } }, { ipBlock: { cidr: '::/0' } }]);
    expect(find(custom, 'IPAddressPool', 'default')).toMatchObject({ apiVersion: 'switchboard.dev/v1beta1', spec: { addresses: ['192.0.2.0/28'] } });
    expect(find(custom, 'L2Advertisement', 'default')).toMatchObject({ apiVersion: 'switchboard.dev/v1beta1', spec: { ipAddressPools: ['default'] } });
    expect(names(custom)).toEqual(names([...defaults, find(custom, 'IPAddressPool', 'default'), find(custom, 'L2Advertisement', 'default')]));

    const speakerObjects = ['ClusterRole/switchboard-speaker', 'ClusterRoleBinding/switchboard-speaker', 'DaemonSet/switchboard-speaker', 'Role/switchboard-speaker', 'RoleBinding/switchboard-speaker', 'Service/switchboard-speaker-metrics', 'ServiceAccount/switchboard-speaker'];
    expect(names(await render('no speaker'))).toEqual(names(defaults).filter((n) => !speakerObjects.includes(n)));

    const noLoadBalancer = await render('no load balancer');
    expect(argsOf(controllerOf(noLoadBalancer))).toContain('--load-balancer-controller=false');
    expect(argsOf(controllerOf(noLoadBalancer)).filter((a) => a.startsWith('--pool-webhook'))).toEqual([]);
    expect(controllerOf(noLoadBalancer).spec.template.spec.containers[0].ports?.map((p) => p.name)).toEqual(['metrics', 'webhook']);
    expect((find(noLoadBalancer, 'Service', 'switchboard-webhook').spec as { ports: { name: string }[] }).ports.map((p) => p.name)).toEqual(['allocation']);

    const noAllocation = await render('no allocation');
    expect(argsOf(controllerOf(noAllocation)).filter((a) => a.startsWith('--webhook-'))).toEqual([]);
    expect((find(noAllocation, 'Service', 'switchboard-webhook').spec as { ports: { name: string }[] }).ports.map((p) => p.name)).toEqual(['pool-validation']);

    const endpointsOnly = await render('endpoint controllers only');
    expect(names(endpointsOnly).filter((n) => n.startsWith('Service/') || n.startsWith('NetworkPolicy/'))).toEqual(['Service/switchboard-controller-metrics']);
    expect(argsOf(controllerOf(endpointsOnly)).filter((a) => a.includes('client'))).toEqual([]);

    expect(argsOf(controllerOf(await render('no endpoint controllers'))).slice(-3)).toEqual(['--endpointslice-controller=false', '--endpoints-controller=false', '--endpointslice-mirroring-controller=false']);

    const plain = await render('plain HTTP metrics, no leader election');
    expect(flagValue(argsOf(controllerOf(plain)), 'leader-elect')).toBe('false');
    expect(controllerOf(plain).spec.replicas).toBe(1);
    for (const owner of [controllerOf(plain), speakerOf(plain)]) {
      expect(flagValue(argsOf(owner), 'metrics-secure')).toBe('false');
      const probes = Object.entries(owner.spec.template.spec.containers[0]).filter(([k]) => k.endsWith('Probe'));
      expect(probes.map(([, p]) => (p as { httpGet: { scheme?: string } }).httpGet.scheme)).toEqual(probes.map(() => undefined));
    }
    for (const service of ['switchboard-controller-metrics', 'switchboard-speaker-metrics']) {
      expect((find(plain, 'Service', service).spec as { ports: { name: string }[] }).ports.map((p) => p.name)).toEqual(['http-metrics']);
      expect((find(defaults, 'Service', service).spec as { ports: { name: string }[] }).ports.map((p) => p.name)).toEqual(['https-metrics']);
    }

    // The ServiceMonitor: off by default; on, it scrapes both metrics Services on the port name and scheme they serve.
    expect(names(defaults).filter((n) => n.startsWith('ServiceMonitor/'))).toEqual([]);
    const monitored = await render('service monitor');
    expect(names(monitored)).toEqual(names([...defaults, find(monitored, 'ServiceMonitor', 'switchboard')]));
    const monitor = find(monitored, 'ServiceMonitor', 'switchboard') as Manifest & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; scheme?: string }[] } };
    expect(monitor.metadata?.labels?.release).toBe('prom');
    expect(monitor.spec.endpoints).toEqual([{ port: 'https-metrics', scheme: 'https', bearerTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token', tlsConfig: { insecureSkipVerify: true } }]);
    for (const service of ['switchboard-controller-metrics', 'switchboard-speaker-metrics']) {
      const labels = find(monitored, 'Service', service).metadata?.labels ?? {};
      expect(Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => labels[k] === v)).toBe(true);
    }
    expect((find(plain, 'ServiceMonitor', 'switchboard').spec as { endpoints: unknown[] }).endpoints).toEqual([{ port: 'http-metrics' }]);
  });
});

describeDeployment({
  title: 'charts/switchboard (helm template)',
  render: async () => renderChart(await helm(), NS, { namespace: { create: true } }),
  variants: async () => Promise.all(Object.entries(VARIANTS).map(async ([name, values]) => ({ name, objects: (await renderChart(await helm(), NS, values)).objects }))),
});
