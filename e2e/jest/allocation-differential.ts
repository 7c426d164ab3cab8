// Differential allocation tests: the same Service requests sent to two control planes of the same ranges, one where
// kube-apiserver allocates alone ("bare") and one whose Services Switchboard's webhooks allocate ("switchboard"),
// and every answer compared: HTTP code, reason, message, details (kind, name, causes with field, reason, message)
// and, for a success, the whole spec. Values picked dynamically differ between the two; each such pair must lie in
// the dynamic band of its family on both sides, and is then replaced by a token naming the field it was picked for
// (`<web.clusterIPs[1]>`), in specs and in messages alike, so that later steps may refer to it.
import { expect } from '@jest/globals';
import { isIP } from 'node:net';
import { type ServiceIPRange, bandOfIP, parseServiceClusterIPRangeFlag, rangeContainsIP } from '../../allocators/service/ip-range.js';
import { type NodePortRange, bandOfPort, nodePortRange } from '../../allocators/service/port-range.js';
import { claimName, ipClaim } from '../../allocators/service/claim-names.js';
import { familyOfIP } from '../../api/ip.js';
import { MutatingWebhookConfigurations, Namespaces, Services, ValidatingWebhookConfigurations } from '../../api/resources.js';
import type { Service } from '../../api/wire.js';
import { LocalControlPlane, WEBHOOK_CLIENT_NAME } from '../../cmd/up/controlplane/controlplane.js';
import { freePort } from '../../cmd/up/controlplane/processes.js';
import { WEBHOOK_NAMES } from '../../controllers/serviceallocation/webhook-configurations.js';
import { ApiError, KubeClient, isAlreadyExists } from '../../controllers/runtime/client.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { eventually } from './cluster.js';
import { Balancer, allocationFlags, claimsMatchServices, claimsSettle } from './service-allocation.js';
import { ENDPOINT_CONTROLLERS_OFF, replicaFlags, requireBuiltSwitchboard, spawnSwitchboard, stopSwitchboard, waitForOutput, type SwitchboardProcess } from './switchboard-process.js';

/** One request of a case. `update` reads the Service and PUTs back what `change` makes of it. */
export type Step =
  | { readonly op: 'create'; readonly service: Service; readonly dryRun?: boolean }
  | { readonly op: 'patch'; readonly name: string; readonly patch: unknown; readonly type?: 'merge' | 'json' }
  | { readonly op: 'update'; readonly name: string; readonly change: (current: Service) => Service }
  | { readonly op: 'delete'; readonly name: string };

/** A case: named so that a failure says which; its Services live in the namespace both sides share. */
export interface DifferentialCase {
  readonly name: string;
  readonly steps: readonly Step[];
}

/** An answer reduced to what is compared. */
export interface Answer {
  readonly code: number;
  readonly reason?: string;
  readonly message?: string;
  readonly details?: unknown;
  readonly spec?: unknown;
}

/** Both sides' answers to one step, and the dynamic picks that were not of the right family and band. */
export interface StepAnswers {
  readonly step: number;
  readonly bare: Answer;
  readonly switchboard: Answer;
  readonly problems: readonly string[];
}

interface Side {
  readonly name: 'bare' | 'switchboard';
  readonly cp: LocalControlPlane;
  readonly client: KubeClient;
  /** Picked value ("10.96.12.7", "31234") → token; only values that differed between the sides. */
  readonly tokens: Map<string, string>;
}

export const DIFFERENTIAL_NAMESPACE = 'diff';
const SWITCHBOARD_NAMESPACE = 'switchboard-system';
/**
 * Known exclusion: kube-apiserver prefixes the message of every webhook denial with this (ToStatusErr in
 * apiserver/pkg/admission/plugin/webhook/errors/statuserror.go); no webhook can answer without it. Code, reason and
 * details pass unchanged, and kubectl rebuilds an Invalid error from its causes, so users see identical lines.
 */
export const DENIAL_PREFIX = `admission webhook "${WEBHOOK_NAMES.mutate}" denied the request: `;

export interface DifferentialOptions {
  readonly serviceClusterIPRange: string;
  readonly log: (line: string) => void;
}

/** The two control planes, the Switchboard replica of the second, and the runner of cases against both. */
export class AllocationDifferential {
  private bare?: Side;
  private switchboard?: Side;
  private replica?: SwitchboardProcess;
  private readonly balancer = new Balancer();
  readonly ipRanges: ServiceIPRange[];
  readonly portRange: NodePortRange = nodePortRange();
  /** How many answers differed only by the webhook's prefix (DENIAL_PREFIX). */
  webhookDenials = 0;

  constructor(private readonly options: DifferentialOptions) {
    this.ipRanges = parseServiceClusterIPRangeFlag(options.serviceClusterIPRange);
  }

  async start(): Promise<void> {
    requireBuiltSwitchboard();
    const controlPlane = (name: string) =>
      new LocalControlPlane({ serviceClusterIPRange: this.options.serviceClusterIPRange, kubeControllerManager: false, log: (l) => this.options.log(`${name}: ${l}`) }).start();
    const started = await Promise.allSettled([controlPlane('bare'), controlPlane('switchboard'), this.balancer.listen()]);
    const [bare, switchboard] = started;
    if (bare.status === 'fulfilled') this.bare = side('bare', bare.value);
    if (switchboard.status === 'fulfilled') this.switchboard = side('switchboard', switchboard.value);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed || !this.bare || !this.switchboard) throw failed?.reason;
    for (const s of [this.bare, this.switchboard]) await s.client.create(Namespaces, { metadata: { name: DIFFERENTIAL_NAMESPACE } });
    await this.startReplica(this.switchboard.cp);
  }

  /** One replica on the API server's own ranges (ServiceCIDR "kubernetes"), ready once both webhooks are registered. */
  private async startReplica(cp: LocalControlPlane): Promise<void> {
    const client = this.switchboard!.client;
    await client.create(Namespaces, { metadata: { name: SWITCHBOARD_NAMESPACE } }).catch((err: unknown) => {
      if (!isAlreadyExists(err)) throw err;
    });
    const port = await freePort();
    this.replica = spawnSwitchboard('differential', [
      ...replicaFlags(cp.kubeconfig, SWITCHBOARD_NAMESPACE, 'differential'),
      ...ENDPOINT_CONTROLLERS_OFF,
      '--load-balancer-install-crds=false',
      ...allocationFlags(this.balancer, port, 2000),
      `--webhook-client-ca-file=${cp.info.webhookClientCAFile}`,
      `--webhook-client-names=${WEBHOOK_CLIENT_NAME}`,
    ]);
    this.balancer.route([port]);
    await waitForOutput(this.replica, '"admission webhook serving"', 60_000);
    const kubernetesIP = (await client.get<Service>(Services, 'kubernetes', 'default')).spec?.clusterIP ?? '';
    await eventually(async () => {
      const claim = await client.getOrUndefined<ServiceClaim>(ServiceClaims, claimName(ipClaim(kubernetesIP)));
      const mutating = await client.getOrUndefined(MutatingWebhookConfigurations, 'switchboard-service-allocation');
      const validating = await client.getOrUndefined(ValidatingWebhookConfigurations, 'switchboard-service-allocation');
      return claim?.status?.phase === 'Bound' && mutating !== undefined && validating !== undefined;
    }, 60_000);
  }

  async stop(): Promise<void> {
    if (this.replica) await stopSwitchboard(this.replica, 'SIGKILL');
    await this.balancer.close();
    for (const s of [this.bare, this.switchboard]) {
      s?.client.close();
      await s?.cp.stop();
    }
  }

  /** Sends each step to both sides, in turn; the answers of every step. */
  async run(testCase: DifferentialCase): Promise<StepAnswers[]> {
    const bare = this.bare!;
    const switchboard = this.switchboard!;
    const transcript: StepAnswers[] = [];
    for (const [index, step] of testCase.steps.entries()) {
      const [a, b] = await Promise.all([send(bare, step), send(switchboard, step)]);
      const problems = this.tokenizePicks(a, b, bare, switchboard);
      const answers = { bare: this.answer(bare, a), switchboard: this.answer(switchboard, b) };
      this.options.log(`${testCase.name} #${index} ${describeStep(step)}: ${summary(answers.bare)}`);
      transcript.push({ step: index, ...answers, problems });
    }
    return transcript;
  }

  /** Every held value on the Switchboard side has its claim, bound to the Service holding it. */
  /** Runs a case and expects Switchboard's answer to every step to be the bare API server's, with no problem. */
  async expectSameAnswers(testCase: DifferentialCase): Promise<void> {
    const transcript = await this.run(testCase);
    expect(transcript.map((t) => ({ step: t.step, answer: t.switchboard, problems: t.problems }))).toEqual(
      transcript.map((t) => ({ step: t.step, answer: t.bare, problems: [] })),
    );
  }

  /** After the cases: Switchboard's webhook was in the path (it denied something), and claims match held values. */
  async expectWebhookInPathAndClaimsAgree(log: (line: string) => void): Promise<void> {
    log(`${this.webhookDenials} answers differed only by the webhook denial prefix`);
    expect(this.webhookDenials).toBeGreaterThan(0);
    await this.claimsAgree();
  }

  async claimsAgree(): Promise<void> {
    const started = Date.now();
    this.options.log(`claims before settling: ${await claimsMatchServices(this.switchboard!.client)}`);
    await claimsSettle(this.switchboard!.client, 60_000, 200, { ips: this.ipRanges[0], ports: this.portRange });
    this.options.log(`claims settled in ${Date.now() - started} ms`);
  }

  /**
   * Values of the two successful answers that differ: both must be dynamic picks of the right family and band;
   * they are recorded as tokens on each side.
   */
  private tokenizePicks(a: Raw, b: Raw, bare: Side, switchboard: Side): string[] {
    if (!a.ok || !b.ok || !a.service?.spec || !b.service?.spec) return [];
    const name = a.service.metadata?.name ?? '';
    const problems: string[] = [];
    const ours = pickedValues(b.service);
    for (const [field, theirs] of pickedValues(a.service)) {
      const mine = ours.get(field);
      if (mine === undefined || mine === theirs) continue;
      for (const [sideName, value] of [['bare', theirs], ['switchboard', mine]] as const) {
        const problem = this.dynamicPickProblem(field, value, a.service);
        if (problem) problems.push(`${sideName} ${field}=${value}: ${problem}`);
      }
      const token = `<${name}.${field}>`;
      bare.tokens.set(theirs, token);
      switchboard.tokens.set(mine, token);
    }
    return problems;
  }

  /** Why `value`, picked for `field`, is not a dynamic pick of the right family in the dynamic band; '' if it is. */
  private dynamicPickProblem(field: string, value: string, service: Service): string {
    const ipIndex = /^clusterIPs\[(\d)\]$/.exec(field);
    if (ipIndex) {
      const family = service.spec?.ipFamilies?.[Number(ipIndex[1])];
      if (familyOfIP(value) !== family) return `not of family ${family}`;
      const range = this.ipRanges.find((r) => r.family === family && rangeContainsIP(r, value));
      if (!range) return 'in no service CIDR';
      return bandOfIP(range, value) === 'dynamic' ? '' : `in the ${bandOfIP(range, value)} band of ${range.cidr}`;
    }
    if (field === 'clusterIP') return '';
    const band = bandOfPort(this.portRange, Number(value));
    return band === 'dynamic' ? '' : `in the ${band ?? 'no'} band of the node port range`;
  }

  private answer(s: Side, raw: Raw): Answer {
    if (raw.ok) return tokenize(s, { code: raw.code, ...(raw.service ? { spec: raw.service.spec } : {}) }) as Answer;
    let message = raw.status.message;
    if (s.name === 'switchboard' && message?.startsWith(DENIAL_PREFIX)) {
      this.webhookDenials++;
      message = message.slice(DENIAL_PREFIX.length);
    }
    const answer: Answer = {
      code: raw.code,
      ...(raw.status.reason !== undefined ? { reason: raw.status.reason } : {}),
      ...(message !== undefined ? { message } : {}),
      ...(raw.status.details !== undefined ? { details: raw.status.details } : {}),
    };
    return tokenize(s, answer) as Answer;
  }
}

function side(name: Side['name'], cp: LocalControlPlane): Side {
  return { name, cp, client: KubeClient.fromFile(cp.kubeconfig, `differential-${name}`), tokens: new Map() };
}

type Raw = { ok: true; code: number; service?: Service } | { ok: false; code: number; status: ApiError['status'] };

async function send(s: Side, step: Step): Promise<Raw> {
  const ns = DIFFERENTIAL_NAMESPACE;
  const path = (name?: string) => s.client.path(Services, ns, name);
  // The client answers a success with its body only; its observer sees the code (steps of a side run one at a time).
  let code = 0;
  s.client.observer = (_method, _resource, status) => (code = status);
  const ok = (service?: Service): Raw => ({ ok: true, code, ...(service ? { service } : {}) });
  try {
    switch (step.op) {
      case 'create':
        return ok(await s.client.request<Service>('POST', `${path()}${step.dryRun ? '?dryRun=All' : ''}`, step.service));
      case 'patch': {
        const type = step.type === 'json' ? 'application/json-patch+json' : 'application/merge-patch+json';
        return ok(await s.client.request<Service>('PATCH', path(step.name), step.patch, type));
      }
      case 'update': {
        const current = await s.client.request<Service>('GET', path(step.name));
        return ok(await s.client.request<Service>('PUT', path(step.name), step.change(structuredClone(current))));
      }
      case 'delete':
        await s.client.request('DELETE', path(step.name));
        return ok();
    }
  } catch (err) {
    if (err instanceof ApiError) return { ok: false, code: err.code, status: err.status };
    throw err;
  }
}

/** The allocated values of a Service by field: clusterIP, clusterIPs[i], ports[i].nodePort, healthCheckNodePort. */
function pickedValues(service: Service): Map<string, string> {
  const spec = service.spec ?? {};
  const values = new Map<string, string>();
  if (spec.clusterIP && isIP(spec.clusterIP)) values.set('clusterIP', spec.clusterIP);
  (spec.clusterIPs ?? []).forEach((ip, i) => isIP(ip) && values.set(`clusterIPs[${i}]`, ip));
  (spec.ports ?? []).forEach((p, i) => p.nodePort && values.set(`ports[${i}].nodePort`, String(p.nodePort)));
  if (spec.healthCheckNodePort) values.set('healthCheckNodePort', String(spec.healthCheckNodePort));
  return values;
}

/** Replaces this side's picked values by their tokens, in every string and number of `value`. */
function tokenize(s: Side, value: unknown): unknown {
  if (s.tokens.size === 0) return value;
  if (typeof value === 'number') return s.tokens.get(String(value)) ?? value;
  if (typeof value === 'string') {
    let text = value;
    for (const [picked, token] of s.tokens) {
      const escaped = picked.replace(/[.:]/g, (c) => `\\${c}`);
      // Not after '-': a port picked at the range's top (32767) is also the end of "30000-32767" in range messages.
      text = text.replace(new RegExp(`(?<![\\w.:-])${escaped}(?![\\w.]|:[0-9a-f])`, 'g'), token);
    }
    return text;
  }
  if (Array.isArray(value)) return value.map((v) => tokenize(s, v));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tokenize(s, v)]));
  return value;
}

function describeStep(step: Step): string {
  if (step.op === 'create') return `create ${step.service.metadata?.name}${step.dryRun ? ' (dry-run)' : ''}`;
  return `${step.op} ${step.name}`;
}

function summary(answer: Answer): string {
  return answer.code < 300 ? String(answer.code) : `${answer.code} ${answer.message ?? ''}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing cases

type ServiceSpec = NonNullable<Service['spec']>;

/** A Service with a selector and port 80 unless `spec` says otherwise. */
export function service(name: string, spec: Partial<ServiceSpec> = {}): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector: { app: name }, ports: [{ port: 80 }], ...spec } };
}

export const create = (name: string, spec: Partial<ServiceSpec> = {}): Step => ({ op: 'create', service: service(name, spec) });
export const dryRunCreate = (name: string, spec: Partial<ServiceSpec> = {}): Step => ({ op: 'create', service: service(name, spec), dryRun: true });
export const mergePatch = (name: string, spec: Partial<ServiceSpec> | Record<string, unknown>): Step => ({ op: 'patch', name, patch: { spec } });
export const jsonPatch = (name: string, ops: unknown[]): Step => ({ op: 'patch', name, patch: ops, type: 'json' });
export const update = (name: string, change: (spec: ServiceSpec) => void): Step => ({
  op: 'update',
  name,
  change: (current) => {
    change((current.spec ??= {}));
    return current;
  },
});
export const remove = (name: string): Step => ({ op: 'delete', name });
