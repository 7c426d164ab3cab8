// The scenarios' environment on a kind cluster: pods are a Deployment of the Switchboard image serving HTTP (already
// loaded into the nodes, so nothing is pulled), run by real kubelets; LoadBalancer addresses are fetched from a
// container on the kind Docker network, i.e. over the nodes' L2 segment, where only the speaker's ARP answer leads.
import { spawn } from 'node:child_process';
import type { V1Deployment } from '@kubernetes/client-node';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { Pods, type ResourceType } from '../../api/resources.js';
import type { Pod, Wire } from '../../api/wire.js';
import { eventually } from '../jest/cluster.js';
import type { Kubectl, KubectlResult, RunningPod, ScenarioEnv, Workload } from '../scenarios/env.js';

const Deployments: ResourceType = { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true };

/** Answers every GET with the pod's name (the kubelet sets HOSTNAME to it). */
const HTTP_SERVER = "require('node:http').createServer((req, res) => res.end(process.env.HOSTNAME)).listen(Number(process.env.PORT))";

/** Runs `command args…` with `input` on stdin; resolves with its exit code and output (never rejects on failure). */
export function run(command: string, args: readonly string[], input?: string, timeoutMs = 60_000): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', (err) => resolve({ code: 127, stdout, stderr: `${stderr}${String(err)}\n` }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}

export interface KindEnvOptions {
  client: KubeClient;
  /** kubectl binary and the kind cluster's kubeconfig. */
  kubectl: string;
  kubeconfig: string;
  /** The Switchboard image (loaded into the nodes by run.sh); it also serves the test pods and runs the probe. */
  image: string;
  /** The Docker network of the kind nodes. */
  network: string;
  loadBalancerRange: string;
  log(line: string): void;
}

export function kindEnv(options: KindEnvOptions): ScenarioEnv {
  const kubectl: Kubectl = (args, input) => run(options.kubectl, [`--kubeconfig=${options.kubeconfig}`, ...args], input);
  return {
    name: 'kind',
    client: options.client,
    kubectl,
    loadBalancerRange: options.loadBalancerRange,
    timeoutMs: 120_000,
    log: options.log,

    async runPods(namespace: string, workload: Workload): Promise<RunningPod[]> {
      const deployment: Wire<V1Deployment> = {
        metadata: { name: workload.name, namespace },
        spec: {
          replicas: workload.replicas,
          selector: { matchLabels: workload.labels },
          template: {
            metadata: { labels: workload.labels },
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [
                {
                  name: 'http',
                  image: options.image,
                  imagePullPolicy: 'IfNotPresent',
                  command: ['node', '-e', HTTP_SERVER],
                  env: [{ name: 'PORT', value: String(workload.port) }],
                  ports: [{ name: 'http', containerPort: workload.port, protocol: 'TCP' }],
                  readinessProbe: { httpGet: { path: '/', port: workload.port }, periodSeconds: 1 },
                  securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
                },
              ],
            },
          },
        },
      };
      await options.client.create(Deployments, deployment);
      const selector = Object.entries(workload.labels).map(([k, v]) => `${k}=${v}`).join(',');
      return eventually(async () => {
        const pods = (await options.client.list<Pod>(Pods, { namespace, labelSelector: selector })).items;
        const ready = pods.filter((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
        return ready.length === workload.replicas ? ready.map((p) => ({ name: p.metadata?.name ?? '', ip: p.status?.podIP ?? '' })) : false;
      }, 120_000, 500);
    },

    async reach(ip: string, port: number): Promise<string> {
      const script = `fetch('http://${ip}:${port}/', { signal: AbortSignal.timeout(3000) }).then((r) => r.text()).then((t) => process.stdout.write(t))`;
      const out = await run('docker', ['run', '--rm', `--network=${options.network}`, '--entrypoint=node', options.image, '-e', script], undefined, 30_000);
      if (out.code !== 0) throw new Error(`http://${ip}:${port}/ from the ${options.network} network: ${out.stderr.trim() || `exit ${out.code}`}`);
      return out.stdout;
    },
  };
}
