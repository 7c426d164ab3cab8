import { describe, expect, it } from '@jest/globals';
import { scriptedRandom } from '../../allocators/service/bands.js';
import { type ClaimValue, claimName } from '../../allocators/service/claim-names.js';
import { serviceIPRange } from '../../allocators/service/ip-range.js';
import { nodePortRange } from '../../allocators/service/port-range.js';
import type { AllocationConfig } from '../../allocators/service/service-allocation.js';
import { CLAIM_PHASE_BOUND, type ServiceClaim } from '../../crds/serviceclaim.js';
import { ApiError, type KubeClient } from '../runtime/client.js';
import { silentLogger } from '../runtime/log.js';
import type { ResourceType } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import { Store } from '../runtime/store.js';
import { type ServiceAdmissionRequest, mutateService, validateService } from './admission-handlers.js';
import { PendingClaims } from './pending-claims.js';

/** ServiceClaims in memory with the API server's semantics for what the handlers use; Services only to read. */
class ClaimsApi {
  readonly claims = new Map<string, ServiceClaim>();
  /** The stored Services, by namespace/name. */
  readonly services = new Map<string, Service>();
  private version = 1;

  private fail(code: number, reason: string): never {
    throw new ApiError(code, { code, reason }, 'TEST', '/');
  }

  async create(_rt: ResourceType, obj: ServiceClaim): Promise<ServiceClaim> {
    const name = obj.metadata.name ?? '';
    if (this.claims.has(name)) this.fail(409, 'AlreadyExists');
    const stored = structuredClone({ ...obj, metadata: { ...obj.metadata, uid: `claim-${this.version}`, resourceVersion: String(this.version++), generation: 1 } });
    this.claims.set(name, stored);
    return stored;
  }

  async getOrUndefined(rt: ResourceType, name: string, namespace?: string): Promise<ServiceClaim | Service | undefined> {
    return structuredClone(rt.plural === 'services' ? this.services.get(`${namespace}/${name}`) : this.claims.get(name));
  }

  store(service: Service): void {
    this.services.set(`${service.metadata?.namespace}/${service.metadata?.name}`, service);
  }

  async patch(_rt: ResourceType, name: string, patch: { op: string; path: string; value?: unknown }[], type: string): Promise<ServiceClaim> {
    const current = this.claims.get(name);
    if (!current) this.fail(404, 'NotFound');
    if (type !== 'json') throw new Error(`unexpected ${type} patch`);
    const next = structuredClone(current);
    for (const op of patch) {
      const keys = op.path.split('/').slice(1);
      const parent = keys.slice(0, -1).reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, next as unknown as Record<string, unknown>);
      const key = keys[keys.length - 1];
      if (op.op === 'test' && JSON.stringify(parent[key]) !== JSON.stringify(op.value)) this.fail(422, 'Invalid');
      if (op.op === 'add' || op.op === 'replace') parent[key] = op.value;
    }
    next.metadata = { ...next.metadata, resourceVersion: String(this.version++), generation: (current.metadata.generation ?? 1) + 1 };
    this.claims.set(name, next);
    return next;
  }

  async delete(_rt: ResourceType, name: string, opts: { uid?: string } = {}): Promise<void> {
    const current = this.claims.get(name);
    if (!current) this.fail(404, 'NotFound');
    if (opts.uid && current.metadata.uid !== opts.uid) this.fail(409, 'Conflict');
    this.claims.delete(name);
  }

  owner(name: string): ServiceClaim['spec']['service'] | undefined {
    return this.claims.get(name)?.spec.service;
  }
}

const config: AllocationConfig = { ipRanges: [serviceIPRange('10.96.0.0/28')], nodePortRange: nodePortRange('30000-30099') };

function setup() {
  const api = new ClaimsApi();
  // The handlers use only create, getOrUndefined, patch and delete, which ClaimsApi implements.
  const client = api as unknown as KubeClient;
  // Dynamic picks start at the dynamic band's first value (10.96.0.1, 30016), not at a random one: a random
  // ClusterIP for the `thief` below would be the 10.96.0.5 that `web` asks for one time in fourteen.
  const random = scriptedRandom();
  const takeovers: string[] = [];
  const reportTakeover = (claim: ServiceClaim, reason: string, taker: { name: string }) => void takeovers.push(`${claim.metadata.name} → ${taker.name}: ${reason}`);
  const deps = { client, taken: { isKnownTaken: (v: ClaimValue) => api.claims.has(claimName(v)) }, config, log: silentLogger, random, reportTakeover };
  return { api, deps, takeovers };
}

const service = (name: string, spec: Service['spec'], uid?: string): Service => ({
  metadata: { namespace: 'default', name, ...(uid ? { uid } : {}) },
  spec: { ports: [{ port: 80, protocol: 'TCP' }], ...spec },
});

const request = (uid: string, object: Service, extra: Partial<ServiceAdmissionRequest> = {}): ServiceAdmissionRequest => ({
  uid,
  kind: { group: '', version: 'v1', kind: 'Service' },
  operation: 'CREATE',
  namespace: 'default',
  object,
  ...extra,
});

const decodePatch = (patch: string | undefined) => JSON.parse(Buffer.from(patch ?? '', 'base64').toString()) as { op: string; path: string; value: unknown }[];

describe('mutating webhook', () => {
  it('reserves each value under its name and patches the Service', async () => {
    const { api, deps } = setup();
    const review = await mutateService(request('r1', service('web', { type: 'NodePort', clusterIP: '10.96.0.5' })), deps);
    expect(review.response.allowed).toBe(true);
    const patch = decodePatch(review.response.patch);
    expect(patch).toContainEqual({ op: 'add', path: '/spec/clusterIPs', value: ['10.96.0.5'] });
    const nodePort = patch.find((op) => op.path === '/spec/ports/0/nodePort')?.value as number;
    expect(nodePort).toBeGreaterThanOrEqual(30000);
    expect([...api.claims.keys()].sort()).toEqual(['ipv4-10-96-0-5', `nodeport-${nodePort}`].sort());
    expect(api.claims.get('ipv4-10-96-0-5')?.spec).toMatchObject({ service: { namespace: 'default', name: 'web', uid: '' }, request: 'r1' });
  });

  it('denies a taken value with upstream\'s 422 and hands back what it took', async () => {
    const { api, deps } = setup();
    await mutateService(request('r1', service('first', { type: 'NodePort', ports: [{ port: 80, nodePort: 30050 }] })), deps);
    const before = new Set(api.claims.keys());
    const review = await mutateService(request('r2', service('second', { type: 'NodePort', ports: [{ port: 80, nodePort: 30050 }] })), deps);
    expect(review.response).toMatchObject({
      allowed: false,
      status: { code: 422, reason: 'Invalid', message: 'Service "second" is invalid: spec.ports[0].nodePort: Invalid value: 30050: provided port is already allocated' },
    });
    expect(new Set(api.claims.keys())).toEqual(before); // the ClusterIP it had picked is freed again
  });

  it('takes nothing on dry-run and patches nothing, leaving the placeholders to the API server', async () => {
    const { api, deps } = setup();
    const review = await mutateService(request('r1', service('web', { type: 'NodePort' }), { dryRun: true }), deps);
    expect(review.response).toEqual({ uid: 'r1', allowed: true });
    expect(api.claims.size).toBe(0);
  });

  it('takes back a value whose claim still names the same Service (re-created, release pending)', async () => {
    const { api, deps } = setup();
    await mutateService(request('r1', service('web', { clusterIP: '10.96.0.5' })), deps);
    await validateService(request('r1v', service('web', { clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5'] }, 'old-uid')), deps);
    expect(api.owner('ipv4-10-96-0-5')?.uid).toBe('old-uid');
    const again = await mutateService(request('r2', service('web', { clusterIP: '10.96.0.5' })), deps);
    expect(again.response.allowed).toBe(true);
    expect(api.claims.get('ipv4-10-96-0-5')?.spec).toMatchObject({ service: { uid: '' }, request: 'r2' });
    const other = await mutateService(request('r3', service('other', { clusterIP: '10.96.0.5' })), deps);
    expect(other.response.status?.message).toBe(
      'Service "other" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.5"]: failed to allocate IP 10.96.0.5: provided IP is already allocated',
    );
  });
});

describe('validating webhook', () => {
  const allocated = (uid = 'u1') => service('web', { type: 'NodePort', clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5'], ports: [{ port: 80, nodePort: 30050 }] }, uid);

  it('confirms the reservations for the Service\'s uid', async () => {
    const { api, deps } = setup();
    await mutateService(request('r1', service('web', { type: 'NodePort', clusterIP: '10.96.0.5', ports: [{ port: 80, nodePort: 30050 }] })), deps);
    expect((await validateService(request('r1', allocated()), deps)).response.allowed).toBe(true);
    expect(api.owner('ipv4-10-96-0-5')).toEqual({ namespace: 'default', name: 'web', uid: 'u1' });
    expect(api.owner('nodeport-30050')).toEqual({ namespace: 'default', name: 'web', uid: 'u1' });
    // A retried call confirms again, and still writes the spec.
    const generation = api.claims.get('nodeport-30050')?.metadata.generation ?? 0;
    expect((await validateService(request('r1-retry', allocated()), deps)).response.allowed).toBe(true);
    expect(api.claims.get('nodeport-30050')?.metadata.generation).toBe(generation + 1);
  });

  it('takes a value again if its reservation was freed on the way, and denies if someone else took it', async () => {
    const { api, deps } = setup();
    expect((await validateService(request('r1', allocated()), deps)).response.allowed).toBe(true);
    expect(api.owner('ipv4-10-96-0-5')?.uid).toBe('u1');

    api.claims.clear();
    await mutateService(request('r2', service('thief', { clusterIP: '10.96.0.5' })), deps);
    await mutateService(request('r3', service('web', { type: 'NodePort', ports: [{ port: 80, nodePort: 30050 }] })), deps);
    const review = await validateService(request('r4', allocated('u2')), deps);
    expect(review.response).toMatchObject({
      allowed: false,
      status: { code: 422, message: 'Service "web" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.5"]: failed to allocate IP 10.96.0.5: provided IP is already allocated' },
    });
  });

  it('undoes its own confirmations when a later value is refused', async () => {
    const { api, deps } = setup();
    await mutateService(request('r1', service('thief', { type: 'NodePort', ports: [{ port: 80, nodePort: 30050 }] })), deps);
    await mutateService(request('r2', service('web', { clusterIP: '10.96.0.5' })), deps);
    const review = await validateService(request('r3', allocated()), deps);
    expect(review.response.status?.message).toBe('Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 30050: provided port is already allocated');
    expect(api.owner('ipv4-10-96-0-5')).toEqual({ namespace: 'default', name: 'web', uid: '' });
  });

  it('names reservations made for a generateName create', async () => {
    const { api, deps } = setup();
    const unnamed: Service = { metadata: { namespace: 'default', generateName: 'web-' }, spec: { clusterIP: '10.96.0.5', ports: [{ port: 80 }] } };
    await mutateService(request('r1', unnamed), deps);
    expect(api.owner('ipv4-10-96-0-5')).toEqual({ namespace: 'default', name: '', uid: '' });
    const named: Service = { metadata: { namespace: 'default', name: 'web-x7k2p', generateName: 'web-', uid: 'u9' }, spec: { clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5'], ports: [{ port: 80 }] } };
    expect((await validateService(request('r1', named), deps)).response.allowed).toBe(true);
    expect(api.owner('ipv4-10-96-0-5')).toEqual({ namespace: 'default', name: 'web-x7k2p', uid: 'u9' });
  });

  it('confirms only the values an update adds, and nothing on dry-run', async () => {
    const { api, deps } = setup();
    const old = service('web', { clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5'] }, 'u1');
    await mutateService(request('r1', service('web', { type: 'NodePort', clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5'] }, 'u1'), { operation: 'UPDATE', oldObject: old }), deps);
    const nodePortClaim = [...api.claims.keys()].find((n) => n.startsWith('nodeport-')) ?? '';
    const port = Number(nodePortClaim.slice('nodeport-'.length));
    const updated = service('web', { type: 'NodePort', clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5'], ports: [{ port: 80, nodePort: port }] }, 'u1');
    expect((await validateService(request('r1', updated, { operation: 'UPDATE', oldObject: old, dryRun: true }), deps)).response.allowed).toBe(true);
    expect(api.owner(nodePortClaim)?.uid).toBe('');
    expect((await validateService(request('r1', updated, { operation: 'UPDATE', oldObject: old }), deps)).response.allowed).toBe(true);
    expect(api.owner(nodePortClaim)?.uid).toBe('u1');
    expect(api.claims.has('ipv4-10-96-0-5')).toBe(false); // held before: the controller's business, not this request's
  });
});

describe('a value freed by a delete or a type change', () => {
  const spec = (ip: string, type: 'NodePort' | 'ClusterIP' = 'NodePort'): Service['spec'] => ({
    type,
    clusterIP: ip,
    clusterIPs: [ip],
    ports: [{ port: 80, protocol: 'TCP', ...(type === 'NodePort' ? { nodePort: 30050 } : {}) }],
  });
  type Env = ReturnType<typeof setup>;

  /** A create through both webhooks; stored under `uid` when both allow it, as the API server would. */
  async function create(env: Env, name: string, uid: string, ip: string): Promise<ServiceAdmissionRequest['object'] | string> {
    const mutated = await mutateService(request(`mutate-${uid}`, service(name, spec(ip))), env.deps);
    if (!mutated.response.allowed) return mutated.response.status?.message ?? 'denied';
    const object = service(name, spec(ip), uid);
    const validated = await validateService(request(`validate-${uid}`, object), env.deps);
    if (!validated.response.allowed) return validated.response.status?.message ?? 'denied';
    env.api.store(object);
    return object;
  }

  /** The claim controller saw the live Service `uid` holding the value at the claim's current generation. */
  function bind(env: Env, name: string, uid: string): void {
    const claim = env.api.claims.get(name)!;
    claim.status = { phase: 'Bound', boundUID: uid, observedGeneration: claim.metadata.generation };
  }

  const forget = (env: Env, name: string) => env.api.services.delete(`default/${name}`);

  it('goes at once to another Service once its holder, seen by the controller, is deleted', async () => {
    const env = setup();
    await create(env, 'web', 'u1', '10.96.0.5');
    bind(env, 'nodeport-30050', 'u1');
    bind(env, 'ipv4-10-96-0-5', 'u1');
    forget(env, 'web');
    expect(await create(env, 'api', 'u2', '10.96.0.5')).toMatchObject({ metadata: { name: 'api' } });
    expect(env.api.owner('nodeport-30050')).toEqual({ namespace: 'default', name: 'api', uid: 'u2' });
    expect(env.api.owner('ipv4-10-96-0-5')).toEqual({ namespace: 'default', name: 'api', uid: 'u2' });
    expect(env.takeovers.sort()).toEqual(['ipv4-10-96-0-5 → api: holder-deleted', 'nodeport-30050 → api: holder-deleted']);
  });

  it('goes at once to another Service once its settled holder changed type', async () => {
    const env = setup();
    await create(env, 'web', 'u1', '10.96.0.5');
    bind(env, 'nodeport-30050', 'u1');
    env.api.store(service('web', spec('10.96.0.5', 'ClusterIP'), 'u1'));
    expect(await create(env, 'api', 'u2', '10.96.0.6')).toMatchObject({ metadata: { name: 'api' } });
    expect(env.takeovers).toEqual(['nodeport-30050 → api: holder-released']);
  });

  it('lets kube-apiserver\'s allocator decide while the holder may be unwritten, and keeps the claim the holder\'s until then', async () => {
    const env = setup();
    // web's create has passed both webhooks and is on its way to storage: nobody has seen it written.
    await mutateService(request('mutate-u1', service('web', spec('10.96.0.5'))), env.deps);
    await validateService(request('validate-u1', service('web', spec('10.96.0.5'), 'u1')), env.deps);
    const mutated = await mutateService(request('mutate-u2', service('api', spec('10.96.0.6'))), env.deps);
    expect(mutated.response.allowed).toBe(true);
    expect(env.api.claims.get('nodeport-30050')?.spec).toMatchObject({ service: { name: 'web', uid: 'u1' }, request: 'mutate-u2' });
    expect(env.takeovers).toEqual([]);
    // Written after all: kube-apiserver refuses api, whose validating call therefore never comes; had it come,
    // the holder's value stays the holder's.
    env.api.store(service('web', spec('10.96.0.5'), 'u1'));
    const validated = await validateService(request('validate-u2', service('api', spec('10.96.0.6'), 'u2')), env.deps);
    expect(validated.response.status?.message).toBe('Service "api" is invalid: spec.ports[0].nodePort: Invalid value: 30050: provided port is already allocated');
    expect(env.api.owner('nodeport-30050')).toEqual({ namespace: 'default', name: 'web', uid: 'u1' });
  });

  it('is taken at the validating call when kube-apiserver granted it: created and deleted before the controller saw it', async () => {
    const env = setup();
    await create(env, 'web', 'u1', '10.96.0.5');
    forget(env, 'web');
    expect(await create(env, 'api', 'u2', '10.96.0.6')).toMatchObject({ metadata: { name: 'api' } });
    expect(env.api.owner('nodeport-30050')).toEqual({ namespace: 'default', name: 'api', uid: 'u2' });
    expect(env.takeovers).toEqual(['nodeport-30050 → api: granted-by-api-server']);
  });

  it('is not taken from a reservation in flight, whose Service does not exist yet', async () => {
    const env = setup();
    await mutateService(request('mutate-u1', service('web', spec('10.96.0.5'))), env.deps);
    const refused = 'Service "api" is invalid: spec.ports[0].nodePort: Invalid value: 30050: provided port is already allocated';
    expect(await create(env, 'api', 'u2', '10.96.0.6')).toBe(refused);
    expect((await validateService(request('validate-u2', service('api', spec('10.96.0.6'), 'u2')), env.deps)).response.status?.message).toBe(refused);
    expect(env.api.owner('nodeport-30050')).toEqual({ namespace: 'default', name: 'web', uid: '' });
  });

  it('goes to exactly one of two requests that find it freed at the same moment', async () => {
    const env = setup();
    await create(env, 'web', 'u1', '10.96.0.5');
    bind(env, 'nodeport-30050', 'u1');
    forget(env, 'web');
    const takers = ['api', 'db'].map((name) => mutateService(request(`mutate-${name}`, service(name, { type: 'NodePort', ports: [{ port: 80, nodePort: 30050 }] })), env.deps));
    const answers = (await Promise.all(takers)).map((review) => review.response.allowed);
    expect(answers.filter(Boolean)).toHaveLength(1);
    const winner = answers[0] ? 'api' : 'db';
    expect(env.api.owner('nodeport-30050')).toEqual({ namespace: 'default', name: winner, uid: '' });
    expect(env.takeovers).toEqual([`nodeport-30050 → ${winner}: holder-deleted`]);
  });
});

describe('the bound on pending claims, through both webhooks', () => {
  it('refuses a flood of reviews past the bound with a 429 and claims nothing for them', async () => {
    const { api, deps } = setup();
    const cache = new Store<ServiceClaim>();
    const pendingClaims = new PendingClaims({ claims: cache, heldByService: () => false }, { total: 3, perNamespace: 0 });
    const bounded = { ...deps, pendingClaims };
    const ghost = (i: number) => service(`ghost-${i}`, { type: 'NodePort' });
    // Two forged creates take a ClusterIP and a nodePort each; the third finds 4 claims pending (not yet watched).
    for (const i of [0, 1]) expect((await mutateService(request(`r${i}`, ghost(i)), bounded)).response.allowed).toBe(true);
    const refused = await mutateService(request('r2', ghost(2)), bounded);
    expect(refused.response).toMatchObject({ allowed: false, status: { code: 429, reason: 'TooManyRequests' } });
    expect(refused.response.status?.message).toBe('4 ClusterIPs/NodePorts claimed cluster-wide are not settled yet (at most 3): retry in a few seconds');
    // A forged validating review for values nobody reserved would create confirmed claims: refused alike.
    const unreserved = service('ghost-3', { type: 'NodePort', clusterIP: '10.96.0.9', clusterIPs: ['10.96.0.9'], ports: [{ port: 80, nodePort: 30090 }] }, 'forged-uid');
    expect((await validateService(request('r3', unreserved), bounded)).response.status?.code).toBe(429);
    expect(api.claims.size).toBe(4);
    // The watch delivers them (counted once), then the controller binds them: room again.
    const see = (claim: ServiceClaim) => {
      cache.upsert(claim);
      pendingClaims.update(claim);
    };
    for (const claim of api.claims.values()) see(claim);
    expect(pendingClaims.count()).toBe(4);
    for (const claim of api.claims.values()) see({ ...claim, spec: { ...claim.spec, service: { ...claim.spec.service, uid: 'u' } }, status: { phase: CLAIM_PHASE_BOUND } });
    expect((await mutateService(request('r4', ghost(4)), bounded)).response.allowed).toBe(true);
  });
});
