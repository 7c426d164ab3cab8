// The demo's traffic rows (only where they may: root with network namespaces): the data-plane lab (dataplane-lab.ts)
// with a kube-proxy and a speaker in each node namespace, three real pods behind a LoadBalancer Service, then
// `curl http://<LB IP>/` from the client namespace and a request to the ClusterIP from node-0. Everything it makes
// is removed before it returns.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { Services } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import { ensureDataplaneBinaries } from './controlplane/binaries.js';
import { DataplaneLab, type LabPod } from './dataplane-lab.js';
import { netlabUnavailable } from './netlab.js';
import type { DemoRow } from './demo.js';

export interface DataplaneDemoOptions {
  client: KubeClient;
  kubeconfig: string;
  apiPort: number;
  /** Where the demo's Services and Pods live. */
  namespace: string;
  /** The speakers' namespace (their Leases). */
  speakerNamespace: string;
  nodeNames: string[];
  say(line: string): void;
}

const SERVICE = 'web-live';

export async function dataplaneDemo(o: DataplaneDemoOptions): Promise<DemoRow[]> {
  const lbRow = (result: string): DemoRow => ({ job: 'Traffic (LoadBalancer)', object: `curl http://<LB IP>/ (svc/${SERVICE})`, result });
  const clusterIPRow = (result: string): DemoRow => ({ job: 'Traffic (ClusterIP)', object: `curl from node ${o.nodeNames[0]} via kube-proxy`, result });
  const why = netlabUnavailable();
  if (why) return [lbRow(`skipped: ${why}`), clusterIPRow(`skipped: ${why}`)];

  o.say('demo: kube-proxy and a speaker in a network namespace per node, three pods, and requests from the LAN…');
  const work = mkdtempSync(join(tmpdir(), 'sb-demo-dataplane-'));
  let lab: DataplaneLab | undefined;
  const pods: LabPod[] = [];
  try {
    const binaries = await ensureDataplaneBinaries(o.say, { coredns: false });
    lab = new DataplaneLab({ client: o.client, kubeconfig: o.kubeconfig, apiPort: o.apiPort, workDir: work, kubeProxyBinary: binaries.kubeProxy, nodeNames: o.nodeNames });
    await lab.create();
    for (const node of lab.nodes) lab.startSpeaker(node, o.speakerNamespace);
    for (const [i, node] of lab.nodes.entries()) {
      pods.push(await lab.addPod({ namespace: o.namespace, name: `${SERVICE}-${i}`, node, labels: { app: SERVICE }, ready: true }));
    }
    await o.client.createIfAbsent<Service>(Services, {
      metadata: { name: SERVICE, namespace: o.namespace },
      spec: { type: 'LoadBalancer', selector: { app: SERVICE }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    });
    const rows: DemoRow[] = [];
    const deadline = Date.now() + 60_000;
    let svc: Service | undefined;
    while (!svc?.status?.loadBalancer?.ingress?.[0]?.ip && Date.now() < deadline) {
      svc = await o.client.get<Service>(Services, SERVICE, o.namespace);
      await new Promise((r) => setTimeout(r, 200));
    }
    const vip = svc?.status?.loadBalancer?.ingress?.[0]?.ip;
    // The first requests may come before kube-proxy has the endpoints or a speaker has announced: retry for a while.
    const firstAnswer = async (send: () => Promise<{ body?: string; error?: string }>): Promise<string> => {
      let last = 'no request sent';
      while (Date.now() < deadline) {
        const r = await send();
        if (r.body) return `served by pod ${r.body}`;
        last = r.error ?? 'no answer';
        await new Promise((res) => setTimeout(res, 300));
      }
      return `no answer within 60 s (${last})`;
    };
    rows.push(lbRow(vip ? `${await firstAnswer(() => lab!.clientAgent.get(`http://${vip}/`))} (${vip})` : 'no address within 60 s'));
    const clusterIP = svc?.spec?.clusterIP;
    rows.push(clusterIPRow(`${await firstAnswer(() => lab!.nodes[0].agent.get(`http://${clusterIP}/`))} (${clusterIP}:80)`));
    return rows;
  } catch (err) {
    const message = `failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
    return [lbRow(message), clusterIPRow(message)];
  } finally {
    for (const pod of pods) await lab?.removePod(pod);
    await lab?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
