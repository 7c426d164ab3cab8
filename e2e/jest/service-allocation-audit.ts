// What the ClusterIP/NodePort integration tests check after a run: no value held twice, every value in range,
// and claims that agree exactly with the Services holding the values; plus a bounded-concurrency runner.
import { claimName } from '../../allocators/service/claim-names.js';
import { type ServiceIPRange, rangeContainsIP } from '../../allocators/service/ip-range.js';
import { type NodePortRange, portInRange } from '../../allocators/service/port-range.js';
import { heldClaims } from '../../allocators/service/service-allocation.js';
import { Services } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { eventually } from './cluster.js';

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
export function audit(services: readonly Service[], ipRange: ServiceIPRange, portRange: NodePortRange): HeldValuesAudit {
  const held = new Map<string, string>();
  const duplicates: string[] = [];
  const outOfRange: string[] = [];
  for (const service of services) {
    const holder = holderOf(service.metadata ?? {});
    for (const value of heldClaims(service)) {
      const name = claimName(value);
      if (held.has(name)) duplicates.push(`${name}: ${held.get(name)} and ${holder}`);
      held.set(name, holder);
      const inRange = value.kind === 'ip' ? rangeContainsIP(ipRange, value.ip) : portInRange(portRange, value.port);
      if (!inRange) outOfRange.push(`${name} (${holder})`);
    }
  }
  return { duplicates, outOfRange, held };
}

/** Claims and held values agree exactly: every held value claimed for its Service (name and uid), no claim left over. */
export async function claimsMatchServices(client: KubeClient, ipRange: ServiceIPRange, portRange: NodePortRange): Promise<true | string> {
  const [services, claims] = await Promise.all([client.listAll<Service>(Services), client.listAll<ServiceClaim>(ServiceClaims)]);
  const { held } = audit(services.items, ipRange, portRange);
  const claimed = new Map(claims.items.map((c) => [c.metadata.name ?? '', holderOf(c.spec.service)]));
  const missing = [...held].filter(([name, holder]) => claimed.get(name) !== holder).map(([name]) => name);
  const extra = [...claimed.keys()].filter((name) => !held.has(name));
  return missing.length === 0 && extra.length === 0 ? true : `missing ${missing.slice(0, 5).join(',')} (${missing.length}), extra ${extra.slice(0, 5).join(',')} (${extra.length})`;
}

/** Waits until claims and Services agree; the failure names what still differs. */
export function claimsSettle(client: KubeClient, ipRange: ServiceIPRange, portRange: NodePortRange, timeoutMs: number, intervalMs = 200): Promise<true> {
  return eventually(async () => {
    const result = await claimsMatchServices(client, ipRange, portRange);
    if (result !== true) throw new Error(`claims and Services differ: ${result}`);
    return result;
  }, timeoutMs, intervalMs);
}
