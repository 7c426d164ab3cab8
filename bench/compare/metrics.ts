// kube-apiserver's own count of the writes it served: apiserver_request_total for EndpointSlices and Endpoints,
// verbs that change state. Read over HTTPS with the admin kubeconfig's client certificate.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

export interface WriteCounts {
  endpointSlices: number;
  endpoints: number;
}

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY']);

interface KubeconfigJson {
  clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
  users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
}

export class ApiServerMetrics {
  private readonly server: string;
  private readonly tls: { ca: Buffer; cert: Buffer; key: Buffer };

  constructor(kubeconfigPath: string) {
    const config = JSON.parse(readFileSync(kubeconfigPath, 'utf8')) as KubeconfigJson;
    const b = (s: string) => Buffer.from(s, 'base64');
    this.server = config.clusters[0].cluster.server;
    this.tls = { ca: b(config.clusters[0].cluster['certificate-authority-data']), cert: b(config.users[0].user['client-certificate-data']), key: b(config.users[0].user['client-key-data']) };
  }

  /** The /metrics text. */
  text(): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(`${this.server}/metrics`, { ...this.tls, timeout: 30_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics: HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('/metrics timed out')));
      req.end();
    });
  }

  async writes(): Promise<WriteCounts> {
    const counts: WriteCounts = { endpointSlices: 0, endpoints: 0 };
    for (const line of (await this.text()).split('\n')) {
      if (!line.startsWith('apiserver_request_total{')) continue;
      const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
      if (!WRITE_VERBS.has(labels.verb) || labels.subresource) continue;
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (labels.resource === 'endpointslices') counts.endpointSlices += value;
      else if (labels.resource === 'endpoints') counts.endpoints += value;
    }
    return counts;
  }
}
