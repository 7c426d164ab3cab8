// What the tests of ClusterIP/NodePort allocation through real webhook replicas share: a TCP balancer in front of the
// replicas (the API server dials one URL), the flags that turn allocation on in a replica, bounded concurrency, and
// the audits: no value held twice, and claims that agree exactly with the values Services hold.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { type ServiceIPRange, serviceIPRange, rangeContainsIP } from '../../allocators/service/ip-range.js';
import { type NodePortRange, nodePortRange, portInRange } from '../../allocators/service/port-range.js';
import { claimName } from '../../allocators/service/claim-names.js';
import { heldClaims } from '../../allocators/service/service-allocation.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { Services } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import { eventually } from './cluster.js';

/** Round-robin TCP forwarding over the live backends (what kube-proxy does for the webhook's Service). */
export class Balancer {
  private backends: number[] = [];
  private next = 0;
  private readonly server: Server = createServer((client) => this.forward(client, this.backends.length));
  private readonly sockets = new Set<Socket>();
  port = 0;

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** New connections go to these; with `dropOpen`, open ones are cut too (as when the old backends die). */
  route(ports: number[], dropOpen = false): void {
    this.backends = ports;
    if (!dropOpen) return;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  private forward(client: Socket, triesLeft: number): void {
    if (triesLeft === 0) return void client.destroy();
    const port = this.backends[this.next++ % this.backends.length];
    const upstream = createConnection({ port, host: '127.0.0.1' });
    upstream.once('error', () => {
      upstream.destroy();
      if (!client.destroyed) this.forward(client, triesLeft - 1);
    });
    upstream.once('connect', () => {
      this.sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The flags that turn ClusterIP/NodePort allocation on in a replica serving on `webhookPort` behind `balancer`. */
export function allocationFlags(balancer: Balancer, webhookPort: number, graceMs: number): string[] {
  return [
    `--webhook-url=https://127.0.0.1:${balancer.port}`,
    `--webhook-bind-address=127.0.0.1:${webhookPort}`,
    `--claim-grace-period=${graceMs}ms`,
  ];
}

/** Runs `count` tasks with at most `limit` in flight. */
export async function bounded<T>(count: number, limit: number, task: (i: number) => Promise<T>): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i).then(
          (value) => ({ status: 'fulfilled' as const, value }),
          (reason: unknown) => ({ status: 'rejected' as const, reason }),
        );
      }
    }),
  );
  return results;
}

/** The ranges values must lie in. */
export interface AllocationRanges {
  readonly ips: ServiceIPRange;
  readonly ports: NodePortRange;
}

/** The local control plane's (cmd/up/controlplane). */
const LOCAL_RANGES: AllocationRanges = { ips: serviceIPRange('10.96.0.0/16'), ports: nodePortRange('30000-32767') };

export interface HeldValuesAudit {
  /** "claim-name: ns/a and ns/b" for each value held by more than one Service. */
  readonly duplicates: string[];
  /** Values outside the given ranges. */
  readonly outOfRange: string[];
  /** Claim name → the Service holding that value ("ns/name uid"). */
  readonly held: Map<string, string>;
}

const holderOf = (ref: { namespace?: string; name?: string; uid?: string }): string => `${ref.namespace}/${ref.name} ${ref.uid}`;

/** Values held by more than one Service, and values outside the API server's ranges. */
export function audit(services: readonly Service[], ranges: AllocationRanges = LOCAL_RANGES): HeldValuesAudit {
  const held = new Map<string, string>();
  const duplicates: string[] = [];
  const outOfRange: string[] = [];
  for (const service of services) {
    const holder = holderOf(service.metadata ?? {});
    for (const value of heldClaims(service)) {
      const name = claimName(value);
      if (held.has(name)) duplicates.push(`${name}: ${held.get(name)} and ${holder}`);
      held.set(name, holder);
      const inRange = value.kind === 'ip' ? rangeContainsIP(ranges.ips, value.ip) : portInRange(ranges.ports, value.port);
      if (!inRange) outOfRange.push(`${name} (${holder})`);
    }
  }
  return { duplicates, outOfRange, held };
}

/**
 * Claims and held values agree exactly: every held value claimed for its Service (name and uid), no claim left over
 * but reservations.
 */
export async function claimsMatchServices(client: KubeClient, ranges: AllocationRanges = LOCAL_RANGES): Promise<true | string> {
  const [services, claims] = await Promise.all([client.listAll<Service>(Services), client.listAll<ServiceClaim>(ServiceClaims)]);
  const { held } = audit(services.items, ranges);
  const claimed = new Map(claims.items.map((c) => [c.metadata.name ?? '', holderOf(c.spec.service)]));
  const missing = [...held].filter(([name, holder]) => claimed.get(name) !== holder).map(([name]) => name);
  // A reservation waits for its Service: left over by design while no Service holds it.
  const reservations = new Set(claims.items.filter((c) => c.spec.reserved === true).map((c) => c.metadata.name ?? ''));
  const extra = [...claimed.keys()].filter((name) => !held.has(name) && !reservations.has(name));
  return missing.length === 0 && extra.length === 0 ? true : `missing ${missing.slice(0, 5).join(',')} (${missing.length}), extra ${extra.slice(0, 5).join(',')} (${extra.length})`;
}

/** Waits until claims and Services agree; the failure names what still differs. */
export function claimsSettle(client: KubeClient, timeoutMs: number, intervalMs = 200, ranges: AllocationRanges = LOCAL_RANGES): Promise<true> {
  return eventually(async () => {
    const result = await claimsMatchServices(client, ranges);
    if (result !== true) throw new Error(`claims and Services differ: ${result}`);
    return result;
  }, timeoutMs, intervalMs);
}
