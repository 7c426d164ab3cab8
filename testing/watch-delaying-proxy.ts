// An HTTPS proxy on loopback in front of the real API server that delays what chosen watches deliver: a speaker whose
// watch shows it a peer's Lease renewals late (issue 14: the takeover fence, lease-fence.ts). It terminates TLS,
// because a speaker's watches and its own Lease renewals share one client and a TCP proxy (stalling-proxy.ts) could
// only delay both; it forwards each request with the credentials of the real kubeconfig, and holds each chunk of a
// matching response back for `delayMs`, in order. Every other response passes at once.
import { KubeConfig } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Agent, createServer, request, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createCertificateAuthority, issueCertificate, type KeyPairPem } from '../controllers/runtime/pki.js';

export interface WatchDelayingProxyOptions {
  delayMs: number;
  /** Which requests' responses are delayed (path and query, as sent), e.g. watches of Leases. */
  delays: (url: URL) => boolean;
}

/** A watch of Leases (`?watch=true` or `?watch=1` on a leases path). */
export const isLeaseWatch = (url: URL): boolean => url.pathname.endsWith('/leases') && ['true', '1'].includes(url.searchParams.get('watch') ?? '');

interface Upstream {
  server: URL;
  agent: Agent;
}

const decode = (data: string | undefined, file: string | undefined): string | undefined =>
  data ? Buffer.from(data, 'base64').toString() : file ? readFileSync(file, 'utf8') : undefined;

export class WatchDelayingProxy {
  /** Chunks held back so far. */
  delayedChunks = 0;
  /** Until when (ms since the epoch) the chosen watches deliver nothing at all (stall). */
  private heldUntil = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly caPem: string,
    private readonly kubeconfigPath: string,
  ) {}

  /** Listens on a free loopback port and forwards to the API server of `kubeconfigPath` with its credentials. */
  static async start(kubeconfigPath: string, options: WatchDelayingProxyOptions): Promise<WatchDelayingProxy> {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const cluster = kc.getCurrentCluster();
    const user = kc.getCurrentUser();
    if (!cluster || !user) throw new Error(`${kubeconfigPath}: no current cluster or user`);
    const upstream: Upstream = {
      server: new URL(cluster.server),
      agent: new Agent({
        keepAlive: true,
        ca: decode(cluster.caData, cluster.caFile),
        cert: decode(user.certData, user.certFile),
        key: decode(user.keyData, user.keyFile),
      }),
    };
    const ca = await createCertificateAuthority('switchboard-watch-delaying-proxy');
    const serving: KeyPairPem = await issueCertificate(ca, { commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'], usage: 'server' });
    let proxy: WatchDelayingProxy | undefined;
    const server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => proxy!.forward(req, res, upstream, options));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    if (typeof address !== 'object' || !address) throw new Error('the proxy has no address');
    proxy = new WatchDelayingProxy(server, address.port, ca.certPem, kubeconfigPath);
    return proxy;
  }

  private forward(req: IncomingMessage, res: ServerResponse, upstream: Upstream, options: WatchDelayingProxyOptions): void {
    const url = new URL(req.url ?? '/', upstream.server);
    const delayed = options.delays(url);
    const out = request(
      url,
      { method: req.method, headers: { ...req.headers, host: upstream.server.host }, agent: upstream.agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (!delayed) {
          answer.pipe(res);
          return;
        }
        // Timers of one delay fire in the order they were set: the chunks keep their order.
        // A stall holds every chunk until it ends: those set during it fire together, in order, then the next ones.
        const wait = () => Math.max(options.delayMs, this.heldUntil - Date.now());
        answer.on('data', (chunk: Buffer) => {
          this.delayedChunks++;
          setTimeout(() => res.write(chunk), wait());
        });
        answer.on('end', () => setTimeout(() => res.end(), wait()));
      },
    );
    out.on('error', () => res.destroy());
    res.on('close', () => out.destroy());
    req.pipe(out);
  }

  /**
   * The chosen watches deliver nothing for `ms`, then everything held at once: a gap in what the client sees, where
   * a constant delay only shifts it (a peer judges a Lease by the time between the renewals it sees).
   */
  stall(ms: number): void {
    this.heldUntil = Math.max(this.heldUntil, Date.now() + ms);
  }

  /** Writes to `path` a kubeconfig like the real one whose cluster is this proxy. */
  async writeKubeconfig(path: string): Promise<void> {
    const direct = new KubeConfig();
    direct.loadFromFile(this.kubeconfigPath);
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: direct.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${this.port}`, caData: Buffer.from(this.caPem).toString('base64'), caFile: undefined })),
      users: direct.users,
      contexts: direct.contexts,
      currentContext: direct.currentContext,
    });
    await writeFile(path, kc.exportConfig(), { mode: 0o600 });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
