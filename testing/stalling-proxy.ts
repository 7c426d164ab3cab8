// A TCP proxy on loopback in front of the real API server that can go silent without closing anything: the
// half-open connection of a dead peer, a dropped route or a wedged middlebox. Clients behind it see their
// requests and streams stop, and no FIN or RST ever arrives.
import { KubeConfig } from '@kubernetes/client-node';
import { writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { KubeClient, type ClientTuning } from '../controllers/runtime/client.js';

export class StallingProxy {
  private readonly sockets = new Set<Socket>();
  private stalled = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on a free loopback port and forwards every connection to `targetPort` on 127.0.0.1. */
  static async start(targetPort: number): Promise<StallingProxy> {
    let proxy: StallingProxy | undefined;
    const server = createServer((client) => proxy!.accept(client, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    if (typeof address !== 'object' || !address) throw new Error('the proxy has no address');
    proxy = new StallingProxy(server, address.port);
    return proxy;
  }

  private accept(client: Socket, targetPort: number): void {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    if (this.stalled) return; // accepted, then silence: nothing is read or forwarded
    const upstream = connect(targetPort, '127.0.0.1');
    this.sockets.add(upstream);
    upstream.on('close', () => this.sockets.delete(upstream));
    upstream.on('error', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Stops forwarding on every open connection and forwards nothing on new ones, closing none of them. */
  stall(): void {
    this.stalled = true;
    for (const socket of this.sockets) {
      socket.unpipe();
      socket.pause();
    }
  }

  /** New connections are forwarded again; the stalled ones stay silent, as half-open connections do. */
  resume(): void {
    this.stalled = false;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The kubeconfig at `kubeconfigPath`, its clusters reached through `proxy`. */
function kubeConfigThrough(proxy: StallingProxy, kubeconfigPath: string): KubeConfig {
  const direct = new KubeConfig();
  direct.loadFromFile(kubeconfigPath);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: direct.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${proxy.port}` })),
    users: direct.users,
    contexts: direct.contexts,
    currentContext: direct.currentContext,
  });
  return kc;
}

/** A client for the cluster of `kubeconfigPath` that reaches the API server through `proxy`. */
export function clientThrough(proxy: StallingProxy, kubeconfigPath: string, tuning: ClientTuning = {}): KubeClient {
  return new KubeClient(kubeConfigThrough(proxy, kubeconfigPath), 'switchboard-test', tuning);
}

/** Writes to `path` a kubeconfig for a process (a `switchboard` replica) that must reach the API server through `proxy`. */
export async function writeKubeconfigThrough(proxy: StallingProxy, kubeconfigPath: string, path: string): Promise<void> {
  await writeFile(path, kubeConfigThrough(proxy, kubeconfigPath).exportConfig(), { mode: 0o600 });
}

/** The API server's port, from a kubeconfig. */
export function apiServerPort(kubeconfigPath: string): number {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return Number(new URL(kc.getCurrentCluster()!.server).port);
}
