// The kind suite cannot run here (no Docker engine), so what it is made of is checked instead: the kind config, the
// script, the runner's environment contract and the Dockerfile that builds the image it deploys. (The manifests
// render and apply in e2e/deploy/config.int.test.ts, which also checks they name one image.)
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { KUBERNETES_VERSION } from '../../cmd/up/controlplane/binaries.js';
import { REPLACED_CONTROLLERS } from '../../cmd/up/controlplane/controlplane.js';
import { readYamlFile, repoPath, type PodTemplateOwner } from '../deploy/manifests.js';

const read = (relative: string): string => readFileSync(repoPath(relative), 'utf8');

interface KindNode {
  role: string;
  image?: string;
  extraMounts?: { hostPath: string; containerPath: string; readOnly?: boolean }[];
}

interface KindCluster {
  kind: string;
  apiVersion: string;
  kubeadmConfigPatches?: string[];
  networking?: { podSubnet?: string };
  nodes: KindNode[];
}

interface ApiServerPatch {
  extraArgs?: Record<string, string>;
  extraVolumes?: { hostPath: string; mountPath: string }[];
}

const minorOf = (version: string): number => Number(/^v1\.(\d+)\./.exec(version)?.[1]);

describe('e2e/kind/kind-config.yaml', () => {
  const config = load(read('e2e/kind/kind-config.yaml')) as KindCluster;

  it('is a kind cluster of a control plane and a worker on one pinned node image of the local control plane\'s minor', () => {
    expect({ kind: config.kind, apiVersion: config.apiVersion }).toEqual({ kind: 'Cluster', apiVersion: 'kind.x-k8s.io/v1alpha4' });
    expect(config.nodes.map((n) => n.role).sort()).toEqual(['control-plane', 'worker']);
    const images = new Set(config.nodes.map((n) => n.image));
    expect(images.size).toBe(1);
    const [image] = [...images];
    expect(image).toMatch(/^kindest\/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}$/);
    expect(minorOf(image!.split(':')[1])).toBe(minorOf(KUBERNETES_VERSION));
  });

  it('runs kube-controller-manager without the controllers Switchboard replaces, keeping kubeadm\'s defaults', () => {
    const patches = (config.kubeadmConfigPatches ?? []).map((p) => load(p) as { apiVersion?: string; kind: string; controllerManager?: { extraArgs?: Record<string, string> } });
    expect(patches.length).toBeGreaterThan(0);
    const cluster = patches.filter((p) => p.kind === 'ClusterConfiguration');
    expect(cluster).toHaveLength(1);
    // kind generates v1beta3 (extraArgs as a map) for Kubernetes 1.23 to 1.35, v1beta4 (a list) from 1.36.
    expect(cluster[0].apiVersion).toBe('kubeadm.k8s.io/v1beta3');
    const nodeMinor = minorOf(config.nodes[0].image!.split(':')[1]);
    expect(nodeMinor >= 23 && nodeMinor <= 35).toBe(true);
    expect(cluster[0].controllerManager?.extraArgs?.controllers).toBe(['*', 'bootstrapsigner', 'tokencleaner', ...REPLACED_CONTROLLERS.map((c) => `-${c}`)].join(','));
  });
});

describe('the API server\'s client certificate on kind', () => {
  const config = load(read('e2e/kind/kind-config.yaml')) as KindCluster;
  const cluster = (config.kubeadmConfigPatches ?? []).map((p) => load(p) as { kind: string; apiServer?: ApiServerPatch }).find((p) => p.kind === 'ClusterConfiguration');

  it('mounts e2e/kind/apiserver where the API server reads its admission configuration, which names the kubeconfig there', () => {
    const mount = config.nodes.find((n) => n.role === 'control-plane')?.extraMounts?.find((m) => m.hostPath === 'e2e/kind/apiserver');
    expect(mount).toMatchObject({ readOnly: true });
    const inNode = mount!.containerPath;
    expect(cluster?.apiServer?.extraVolumes).toEqual(expect.arrayContaining([expect.objectContaining({ hostPath: inNode, mountPath: inNode })]));
    const configFile = cluster?.apiServer?.extraArgs?.['admission-control-config-file'] ?? '';
    expect(configFile.startsWith(`${inNode}/`)).toBe(true);
    const admission = load(read(`e2e/kind/apiserver/${configFile.slice(inNode.length + 1)}`)) as { plugins: { name: string; configuration: { kubeConfigFile: string } }[] };
    expect(admission.plugins.map((p) => p.name).sort()).toEqual(['MutatingAdmissionWebhook', 'ValidatingAdmissionWebhook']);
    for (const plugin of admission.plugins) expect(existsSync(repoPath(`e2e/kind/apiserver/${plugin.configuration.kubeConfigFile.slice(inNode.length + 1)}`))).toBe(true);
  });

  it('presents kubeadm\'s apiserver-kubelet-client certificate to both webhook ports of the webhook Service, as the component expects', () => {
    const kubeconfig = load(read('e2e/kind/apiserver/webhook-client.kubeconfig')) as { users: { name: string; user: { 'client-certificate': string } }[] };
    const [service] = readYamlFile('config/webhook/service.yaml');
    const host = `${service.metadata.name}.${service.metadata.namespace}.svc`;
    const ports = (service.spec as { ports: { port: number }[] }).ports.map((p) => p.port);
    expect(kubeconfig.users.map((u) => u.name).sort()).toEqual(ports.map((p) => (p === 443 ? host : `${host}:${p}`)).sort());
    expect(new Set(kubeconfig.users.map((u) => u.user['client-certificate']))).toEqual(new Set(['/etc/kubernetes/pki/apiserver-kubelet-client.crt']));
    const component = read('config/components/webhook-client-auth/kustomization.yaml');
    expect(component).toContain('--webhook-client-names=kube-apiserver-kubelet-client');
    expect(component).toContain('--pool-webhook-client-names=kube-apiserver-kubelet-client');
  });

  it('pins the pod subnet the webhook NetworkPolicy keeps off the webhook ports', () => {
    const [policy] = readYamlFile('config/webhook/networkpolicy.yaml');
    const excepted = (policy.spec as { ingress: { from?: { ipBlock: { except?: string[] } }[] }[] }).ingress.flatMap((r) => (r.from ?? []).flatMap((f) => f.ipBlock.except ?? []));
    expect(excepted).toContain(config.networking?.podSubnet);
  });
});

describe('e2e/kind/run.sh', () => {
  const script = read('e2e/kind/run.sh');

  it('is valid bash', () => {
    expect(() => execFileSync('bash', ['-n', repoPath('e2e/kind/run.sh')], { stdio: 'pipe' })).not.toThrow();
  });

  it('uses the kind config, builds the image config/default names, deploys config/default with client authentication and runs the built runner', () => {
    expect(script).toContain('--config e2e/kind/kind-config.yaml');
    expect(script).toMatch(/IMAGE="\$\("\$KUBECTL" kustomize config\/default/);
    expect(script).toContain('docker build --tag "$IMAGE"');
    expect(script).toContain('"$KIND" load docker-image "$IMAGE"');
    expect(script).toContain('k apply -k e2e/kind/deploy');
    expect(load(read('e2e/kind/deploy/kustomization.yaml'))).toMatchObject({
      resources: ['../../../config/default'],
      components: ['../../../config/components/webhook-client-auth'],
    });
    expect(script).toContain('node dist-test/e2e/kind/run-scenarios.js');
    expect(existsSync(repoPath('e2e/kind/run-scenarios.ts'))).toBe(true);
    // `npm run build:test` (tsconfig.test-build.json) compiles the runner, and run.sh runs it first.
    expect(script).toContain('npm run build:test');
    const tsc = repoPath('node_modules/typescript/bin/tsc');
    const build = JSON.parse(execFileSync(process.execPath, [tsc, '-p', repoPath('tsconfig.test-build.json'), '--showConfig'], { encoding: 'utf8' })) as { files: string[] };
    expect(build.files).toContain('./e2e/kind/run-scenarios.ts');
  });

  it('hands the runner every variable it requires', () => {
    const required = [...read('e2e/kind/run-scenarios.ts').matchAll(/required\('(\w+)'\)/g)].map((m) => m[1]);
    expect(required.sort()).toEqual(['KUBECONFIG', 'SWITCHBOARD_E2E_LB_RANGE', 'SWITCHBOARD_IMAGE']);
    const runnerLine = script.split('\n').findIndex((l) => l.includes('node dist-test/e2e/kind/run-scenarios.js'));
    const invocation = script.split('\n').slice(runnerLine - 1, runnerLine + 1).join(' ');
    for (const name of required.filter((n) => n !== 'KUBECONFIG')) expect(invocation).toContain(`${name}=`);
    expect(script).toContain('export KUBECONFIG=');
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const lines = dockerfile.split('\n').filter((l) => !l.trim().startsWith('#'));
  const copies = lines.filter((l) => /^COPY\s/.test(l)).map((l) => l.trim().split(/\s+/).slice(1));
  const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

  it('copies into the build stage only files that exist and the build context keeps', () => {
    for (const args of copies.filter((a) => !a[0].startsWith('--from='))) {
      for (const source of args.slice(0, -1)) {
        expect({ source, exists: existsSync(repoPath(source)) }).toEqual({ source, exists: true });
        expect({ source, ignored: ignored.filter((i) => source === i || source.startsWith(`${i}/`)) }).toEqual({ source, ignored: [] });
      }
    }
  });

  it('puts the raw-socket addon the build makes where SWITCHBOARD_RAWSOCK_ADDON points the speaker', () => {
    const gyp = read('controllers/speaker/native/binding.gyp');
    const target = /"target_name":\s*"([^"]+)"/.exec(gyp)?.[1];
    const built = `/src/controllers/speaker/native/build/Release/${target}.node`;
    const copy = copies.find((a) => a[0] === '--from=build' && a[1] === built);
    expect(copy).toBeDefined();
    const workdir = /^WORKDIR\s+(\S+)/m.exec(dockerfile.split(/^FROM /m).pop() ?? '')?.[1];
    const destination = copy![2].startsWith('/') ? copy![2] : `${workdir}/${copy![2].replace(/^\.\//, '')}`;
    const env = /SWITCHBOARD_RAWSOCK_ADDON=(\S+)/.exec(dockerfile)?.[1];
    expect(env).toBe(destination.endsWith('/') ? `${destination}${target}.node` : destination);
    // raw-socket.ts loads that variable's path when it is set.
    expect(read('controllers/speaker/raw-socket.ts')).toContain('process.env.SWITCHBOARD_RAWSOCK_ADDON');
    // The build stage builds the addon (npm run build runs build:native).
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(dockerfile).toMatch(/RUN npm run build/);
    expect(pkg.scripts.build).toContain('build:native');
  });

  it('runs the executable as the user the Deployment expects, with the package.json that makes dist/ ESM', () => {
    const runtime = dockerfile.split(/^FROM /m).pop() ?? '';
    expect(runtime).toMatch(/^USER 65532:65532$/m);
    const [deployment] = readYamlFile('config/manager/deployment.yaml') as PodTemplateOwner[];
    expect(deployment.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 });
    expect(runtime).toContain('COPY --from=build /src/package.json ./');
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "\/app\/dist\/cmd\/switchboard\.js"\]$/m);
    expect(/^WORKDIR\s+(\S+)/m.exec(runtime)?.[1]).toBe('/app');
  });
});
