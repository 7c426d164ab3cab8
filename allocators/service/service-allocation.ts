// What a Service create or update must allocate and release, in upstream's order and with upstream's errors
// (spec §1.3-§1.7, §4, §5; storage/alloc.go and storage.go, v1.34).
//
// planAllocation is pure: (old Service or undefined, new Service, config) -> plan. executePlan walks a plan
// against a ClaimStore, the only part that touches the API; it decides nothing itself.
import type { Service } from '../../api/wire.js';
import type { RandomBelow } from './bands.js';
import { type ClaimValue, claimName, ipClaim, nodePortClaim } from './claim-names.js';
import {
  type ValidationOptions,
  badClusterIPs,
  badIPFamilies,
  badPolicy,
  isUnchangedPreferDualStack,
  resolveIPFamilies,
} from './families.js';
import { type IPFamily, canonicalIPSloppy, formatIP, parseIPSloppy } from '../../api/ip.js';
import { type ServiceIPRange, dynamicIPCandidates, rangeHoldingIP } from './ip-range.js';
import { pickOrder } from './service-cidrs.js';
import { type NodePortRange, dynamicPortCandidates, formatPortRange, portInRange } from './port-range.js';
import {
  CLUSTER_IP_NONE,
  SERVICE_TYPE,
  allocatesNodePorts,
  cloneService,
  isHeadless,
  needsHealthCheck,
  sameList,
  serviceName,
  serviceType,
  usesNodePorts,
} from './service-fields.js';
import {
  ALLOCATOR_ERRORS,
  type FieldError,
  FieldPath,
  type Status,
  type ValueStyle,
  clusterIPAllocationStatus,
  duplicate,
  duplicateNodePortStatus,
  dynamicClusterIPStatus,
  dynamicNodePortStatus,
  forbidden,
  healthCheckNodePortStatus,
  invalid,
  ipNotInRangeReason,
  nodePortAllocationStatus,
  portNotInRangeReason,
} from '../../api/status.js';

export interface AllocationConfig {
  /**
   * Service CIDRs allocated from; the first one's family is the primary. A dynamic pick tries those of one family in
   * a random order, as kube-apiserver's MetaAllocator does (service-cidrs.ts). May change between calls (live
   * ServiceCIDRs): read it once per request.
   */
  readonly ipRanges: readonly ServiceIPRange[];
  /** The families served, primary first; default: those of ipRanges. Fixed, whatever CIDRs come and go. */
  readonly families?: readonly IPFamily[];
  /** CIDRs Services may hold values of: ipRanges plus those being deleted (default: ipRanges). */
  readonly existingIPRanges?: readonly ServiceIPRange[];
  readonly nodePortRange: NodePortRange;
  readonly validation?: ValidationOptions;
  /** How bad values print in 422s; defaults to the pinned Kubernetes release's (JSON). */
  readonly valueStyle?: ValueStyle;
}

/** The configured families, primary first. */
export function clusterFamilies(config: AllocationConfig): IPFamily[] {
  if (config.families) return [...config.families];
  return [...new Set(config.ipRanges.map((range) => range.family))];
}

/** `claim` takes exactly the requested value (static); `pick` takes any free one in band order (dynamic). */
export type IPStep =
  | { readonly kind: 'claim'; readonly family: IPFamily; readonly index: number; readonly requested: string }
  | { readonly kind: 'pick'; readonly family: IPFamily; readonly index: number };

export type NodePortStep =
  | { readonly kind: 'claim'; readonly portIndex: number; readonly requested: number }
  | { readonly kind: 'pick'; readonly portIndex: number }
  /** Create: a port with the same port number as an earlier one shares its nodePort (53/TCP + 53/UDP). */
  | { readonly kind: 'copy'; readonly portIndex: number; readonly fromPortIndex: number }
  /** Update: a (protocol, nodePort) pair seen twice stops the walk here with a 500. */
  | { readonly kind: 'fail'; readonly status: Status };

export type HealthCheckStep = { readonly kind: 'claim'; readonly requested: number } | { readonly kind: 'pick' };

export interface Releases {
  readonly clusterIPs: readonly ClaimValue[];
  readonly nodePorts: readonly ClaimValue[];
}

export interface AllocationPlan {
  /** The Service after the apiserver's normalisation and family resolution, before values are allocated. */
  readonly service: Service;
  /** In order: ClusterIPs (primary first), then nodePorts, then the healthCheckNodePort. */
  readonly clusterIPs: readonly IPStep[];
  readonly nodePorts: readonly NodePortStep[];
  readonly healthCheckNodePort?: HealthCheckStep;
  /** Held by the old Service and not by the new one: free only once the write has succeeded. */
  readonly release: Releases;
  /**
   * Errors kube-apiserver answers for this request itself: its checks of the clusterIP and family fields before it
   * allocates (spec §5.2 stage 1) or its validation after (stage 5). Claim nothing and let the request through
   * untouched: the apiserver answers with its own, complete 422 (stage 5 lists errors outside these fields too), and
   * without the "admission webhook … denied the request: " prefix a denial of ours would carry.
   */
  readonly apiServerErrors: readonly FieldError[];
}

const NO_RELEASES: Releases = { clusterIPs: [], nodePorts: [] };

export function planAllocation(oldService: Service | undefined, newService: Service, config: AllocationConfig): AllocationPlan {
  const requested = cloneService(newService);
  if (oldService) patchAllocatedValues(requested, oldService);
  normalizeClusterIPs(requested, oldService);

  const resolution = resolveIPFamilies(requested, oldService, clusterFamilies(config), config.validation);
  const service = resolution.service;
  if (resolution.errors.length > 0) {
    return { service, clusterIPs: [], nodePorts: [], release: NO_RELEASES, apiServerErrors: resolution.errors };
  }

  const ips = oldService ? planUpdateClusterIPs(service, oldService) : { steps: planClusterIPs(service), release: [] };
  const ports = oldService ? planUpdateNodePorts(service, oldService) : { steps: planCreateNodePorts(service), release: [] };
  const healthCheck = planHealthCheck(service, oldService);
  const plan: AllocationPlan = {
    service,
    clusterIPs: ips.steps,
    nodePorts: ports.steps,
    ...(healthCheck.step ? { healthCheckNodePort: healthCheck.step } : {}),
    release: { clusterIPs: ips.release, nodePorts: dedupe([...ports.release, ...healthCheck.release]) },
    apiServerErrors: [],
  };
  return { ...plan, apiServerErrors: predictLaterValidation(plan, oldService) };
}

// ---------------------------------------------------------------------------------------------------------------
// Request normalisation (storage.go), before families are resolved

/** patchAllocatedValues: an update that left out allocated values keeps the old ones (re-applied YAML). */
function patchAllocatedValues(service: Service, oldService: Service): void {
  const spec = (service.spec ??= {});
  const oldSpec = oldService.spec ?? {};
  const external = (s: Service) => serviceType(s) === SERVICE_TYPE.externalName;
  if (!external(oldService) && !external(service)) {
    if (!spec.clusterIP && oldSpec.clusterIP) spec.clusterIP = oldSpec.clusterIP;
    if ((spec.clusterIPs?.length ?? 0) === 0 && (oldSpec.clusterIPs?.length ?? 0) > 0) spec.clusterIPs = oldSpec.clusterIPs;
  }
  if (allocatesNodePorts(oldService) && allocatesNodePorts(service)) {
    const oldInUse = new Set(nonZeroNodePorts(oldService));
    const stillUsed = new Set(nonZeroNodePorts(service).filter((port) => oldInUse.has(port)));
    const oldByName = new Map((oldSpec.ports ?? []).map((p) => [p.name ?? '', p.nodePort ?? 0]));
    for (const port of spec.ports ?? []) {
      if (port.nodePort) continue;
      const oldValue = oldByName.get(port.name ?? '') ?? 0;
      if (oldValue !== 0 && !stillUsed.has(oldValue)) port.nodePort = oldValue;
    }
  }
  if (needsHealthCheck(oldService) && needsHealthCheck(service) && !spec.healthCheckNodePort && oldSpec.healthCheckNodePort) {
    spec.healthCheckNodePort = oldSpec.healthCheckNodePort;
  }
}

/** normalizeClusterIPs: keep clusterIP and clusterIPs in step for clients that only know one of them. */
function normalizeClusterIPs(service: Service, oldService: Service | undefined): void {
  const spec = (service.spec ??= {});
  const clusterIP = spec.clusterIP ?? '';
  if (!oldService) {
    if (clusterIP !== '' && (spec.clusterIPs?.length ?? 0) === 0) spec.clusterIPs = [clusterIP];
    return;
  }
  const oldSpec = oldService.spec ?? {};
  const oldClusterIP = oldSpec.clusterIP ?? '';
  if ((oldSpec.clusterIPs?.length ?? 0) > 0 && (spec.clusterIPs?.length ?? 0) === 0 && oldClusterIP === clusterIP) {
    spec.clusterIPs = oldSpec.clusterIPs;
  }
  if (oldClusterIP === clusterIP || !sameList(oldSpec.clusterIPs, spec.clusterIPs)) return;
  if (oldClusterIP !== '' && clusterIP === '') delete spec.clusterIPs;
  else spec.clusterIPs = [clusterIP];
}

// ---------------------------------------------------------------------------------------------------------------
// ClusterIPs

/** allocClusterIPs: one step per family; a missing clusterIPs entry is padded with "" and picked. */
function planClusterIPs(service: Service): IPStep[] {
  if (serviceType(service) === SERVICE_TYPE.externalName) return [];
  const spec = (service.spec ??= {});
  if (spec.clusterIPs?.[0] === CLUSTER_IP_NONE) return [];
  const families = (spec.ipFamilies ?? []) as IPFamily[];
  // The padding is visible: it is part of the bad value if a requested IP then fails (e.g. ["10.96.0.50",""]).
  const clusterIPs = [...(spec.clusterIPs ?? [])];
  while (clusterIPs.length < families.length) clusterIPs.push('');
  spec.clusterIPs = clusterIPs;
  return families.map((family, index) => ipStep(family, index, clusterIPs[index]));
}

function ipStep(family: IPFamily, index: number, requested: string): IPStep {
  return requested === '' ? { kind: 'pick', family, index } : { kind: 'claim', family, index, requested };
}

/** updateClusterIPs: type changes to/from ExternalName, dual-stack upgrade and downgrade. */
function planUpdateClusterIPs(service: Service, oldService: Service): { steps: IPStep[]; release: ClaimValue[] } {
  const none = { steps: [], release: [] };
  if (isUnchangedPreferDualStack(service, oldService)) return none;
  const wasExternal = serviceType(oldService) === SERVICE_TYPE.externalName;
  const isExternal = serviceType(service) === SERVICE_TYPE.externalName;
  if (wasExternal && !isExternal) return { steps: planClusterIPs(service), release: [] };
  if (oldService.spec?.clusterIPs?.[0] === CLUSTER_IP_NONE) return none;

  const oldFamilies = oldService.spec?.ipFamilies ?? [];
  const oldIPs = oldService.spec?.clusterIPs ?? [];
  const heldAt = (i: number) => (oldIPs[i] ? [ipClaim(oldIPs[i])] : []);
  if (!wasExternal && isExternal) return { steps: [], release: oldFamilies.flatMap((_, i) => heldAt(i)) };

  const spec = (service.spec ??= {});
  const families = (spec.ipFamilies ?? []) as IPFamily[];
  if (oldFamilies.length === 1 && families.length === 2) {
    const clusterIPs = [...(spec.clusterIPs ?? [])];
    if (clusterIPs.length < 2) clusterIPs.push('');
    spec.clusterIPs = clusterIPs;
    return { steps: [ipStep(families[1], 1, clusterIPs[1])], release: [] };
  }
  if (oldFamilies.length === 2 && families.length === 1) return { steps: [], release: heldAt(1) };
  return none;
}

// ---------------------------------------------------------------------------------------------------------------
// NodePorts

/** initNodePorts: one nodePort per port number; a requested value anywhere in the group serves the group. */
function planCreateNodePorts(service: Service): NodePortStep[] {
  if (!usesNodePorts(service)) return [];
  const ports = service.spec?.ports ?? [];
  const allocating = allocatesNodePorts(service);
  // Per port number: the port that got the group's nodePort, and the value requested for it (0: picked).
  const groups = new Map<number, { first: number; requested: number }>();
  const steps: NodePortStep[] = [];
  ports.forEach((port, portIndex) => {
    const nodePort = port.nodePort ?? 0;
    if (nodePort === 0 && !allocating) return;
    const group = groups.get(port.port);
    if (group === undefined) {
      // The request may come from a later port of the group; the error is still reported at this one.
      const requested = ports.find((p) => p.port === port.port && p.nodePort)?.nodePort ?? 0;
      groups.set(port.port, { first: portIndex, requested });
      steps.push(requested ? { kind: 'claim', portIndex, requested } : { kind: 'pick', portIndex });
    } else if (nodePort === 0) {
      steps.push({ kind: 'copy', portIndex, fromPortIndex: group.first });
    } else if (nodePort !== group.requested) {
      steps.push({ kind: 'claim', portIndex, requested: nodePort });
    }
  });
  return steps;
}

/** txnUpdateNodePorts: claim values the old Service did not hold, pick missing ones, release dropped ones. */
function planUpdateNodePorts(service: Service, oldService: Service): { steps: NodePortStep[]; release: ClaimValue[] } {
  const oldNumbers = nonZeroNodePorts(oldService);
  const release: ClaimValue[] = [];
  const type = serviceType(service);
  if (usesNodePorts(oldService) && (type === SERVICE_TYPE.externalName || type === SERVICE_TYPE.clusterIP)) {
    release.push(...oldNumbers.flatMap(nodePortClaimOrSkip));
  }
  if (!usesNodePorts(service)) return { steps: [], release };

  const allocating = allocatesNodePorts(service);
  const steps: NodePortStep[] = [];
  const claimedHere = new Set<number>();
  const seenPairs = new Set<string>();
  for (const [portIndex, port] of (service.spec?.ports ?? []).entries()) {
    const nodePort = port.nodePort ?? 0;
    if (nodePort === 0 && !allocating) continue;
    if (nodePort === 0) {
      // A fresh pick cannot collide with another (protocol, nodePort) pair.
      steps.push({ kind: 'pick', portIndex });
      continue;
    }
    if (!oldNumbers.includes(nodePort) && !claimedHere.has(nodePort)) {
      steps.push({ kind: 'claim', portIndex, requested: nodePort });
      claimedHere.add(nodePort);
    }
    const protocol = port.protocol ?? 'TCP';
    const pair = `${protocol}/${nodePort}`;
    if (seenPairs.has(pair)) {
      steps.push({ kind: 'fail', status: duplicateNodePortStatus(protocol, nodePort) });
      return { steps, release: [] };
    }
    seenPairs.add(pair);
  }
  const newNumbers = new Set(nonZeroNodePorts(service));
  release.push(...oldNumbers.filter((n) => !newNumbers.has(n)).flatMap(nodePortClaimOrSkip));
  return { steps, release };
}

/** Creates allocate a health check port when needed; updates when it becomes needed, and release it after. */
function planHealthCheck(service: Service, oldService: Service | undefined): { step?: HealthCheckStep; release: ClaimValue[] } {
  const needed = needsHealthCheck(service);
  const neededBefore = oldService !== undefined && needsHealthCheck(oldService);
  if (needed && !neededBefore) {
    const requested = service.spec?.healthCheckNodePort ?? 0;
    return { step: requested ? { kind: 'claim', requested } : { kind: 'pick' }, release: [] };
  }
  if (neededBefore && !needed) return { release: nodePortClaimOrSkip(oldService?.spec?.healthCheckNodePort ?? 0) };
  return { release: [] };
}

function nonZeroNodePorts(service: Service): number[] {
  return (service.spec?.ports ?? []).map((p) => p.nodePort ?? 0).filter((n) => n !== 0);
}

/** Releasing a port outside any range is a no-op upstream; one that is not a port at all has no claim. */
function nodePortClaimOrSkip(port: number): ClaimValue[] {
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? [nodePortClaim(port)] : [];
}

function dedupe(values: ClaimValue[]): ClaimValue[] {
  const seen = new Set<string>();
  return values.filter((v) => {
    const key = v.kind === 'ip' ? `ip:${v.ip}` : `port:${v.port}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The apiserver's later validation, for the fields allocation touches

/**
 * The errors stage 5 (ValidateService/ValidateServiceUpdate after PrepareForUpdate) will raise on the fields this
 * plan fills, judged on the Service as it will look once allocated (picked values are fresh and distinct).
 */
function predictLaterValidation(plan: AllocationPlan, oldService: Service | undefined): FieldError[] {
  const service = allocatedShape(plan);
  if (oldService) dropTypeDependentFields(service, oldService);
  const spec = service.spec ?? {};
  const path = FieldPath.of('spec');
  const errors: FieldError[] = [];
  const type = serviceType(service);

  if ((type === SERVICE_TYPE.loadBalancer || type === SERVICE_TYPE.nodePort) && isHeadless(service)) {
    errors.push(invalid(path.child('clusterIPs').index(0), CLUSTER_IP_NONE, `may not be set to 'None' for ${type} services`));
  }
  if (type === SERVICE_TYPE.externalName) {
    const notForExternalName = 'may not be set for ExternalName services';
    if ((spec.clusterIPs?.length ?? 0) > 0) errors.push(forbidden(path.child('clusterIPs'), notForExternalName));
    if ((spec.ipFamilies?.length ?? 0) > 0) errors.push(forbidden(path.child('ipFamilies'), notForExternalName));
    if (spec.ipFamilyPolicy != null) errors.push(forbidden(path.child('ipFamilyPolicy'), notForExternalName));
  }
  const seenPairs = new Set<string>();
  (spec.ports ?? []).forEach((port, i) => {
    const nodePort = port.nodePort ?? 0;
    if (nodePort === 0) return;
    const nodePortPath = path.child('ports').index(i).child('nodePort');
    if (type === SERVICE_TYPE.clusterIP) errors.push(forbidden(nodePortPath, "may not be used when `type` is 'ClusterIP'"));
    const pair = `${port.protocol ?? 'TCP'}/${nodePort}`;
    if (seenPairs.has(pair)) errors.push(duplicate(nodePortPath, nodePort));
    seenPairs.add(pair);
  });
  if (!needsHealthCheck(service) && (spec.healthCheckNodePort ?? 0) !== 0) {
    errors.push(
      invalid(path.child('healthCheckNodePort'), spec.healthCheckNodePort ?? 0, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"),
    );
  }
  if (oldService) {
    if (needsHealthCheck(oldService) && needsHealthCheck(service) && spec.healthCheckNodePort !== oldService.spec?.healthCheckNodePort) {
      errors.push(forbidden(path.child('healthCheckNodePort'), 'field is immutable'));
    }
    errors.push(...upgradeDowngradeErrors(service, oldService));
  }
  return errors;
}

/** The planned Service with every pick filled by a placeholder that equals nothing else. */
function allocatedShape(plan: AllocationPlan): Service {
  const service = cloneService(plan.service);
  const spec = (service.spec ??= {});
  const clusterIPs = [...(spec.clusterIPs ?? [])];
  for (const step of plan.clusterIPs) clusterIPs[step.index] = step.kind === 'claim' ? step.requested : `<picked ${step.family}>`;
  if (plan.clusterIPs.length > 0) {
    spec.clusterIPs = clusterIPs;
    if (plan.clusterIPs.some((s) => s.index === 0)) spec.clusterIP = clusterIPs[0];
  }
  const ports = spec.ports ?? [];
  let placeholder = 0;
  for (const step of plan.nodePorts) {
    if (step.kind === 'claim') ports[step.portIndex].nodePort = step.requested;
    else if (step.kind === 'pick') ports[step.portIndex].nodePort = --placeholder;
    else if (step.kind === 'copy') ports[step.portIndex].nodePort = ports[step.fromPortIndex].nodePort;
  }
  if (plan.healthCheckNodePort?.kind === 'pick') spec.healthCheckNodePort = --placeholder;
  return service;
}

/** The wiping half of the strategy's dropTypeDependentFields: values the user left as they were. */
function dropTypeDependentFields(service: Service, oldService: Service): void {
  const spec = (service.spec ??= {});
  const oldSpec = oldService.spec ?? {};
  const toExternalName =
    serviceType(oldService) !== SERVICE_TYPE.externalName && serviceType(service) === SERVICE_TYPE.externalName;
  if (toExternalName) {
    if (spec.clusterIP === oldSpec.clusterIP && sameList(spec.clusterIPs, oldSpec.clusterIPs)) {
      delete spec.clusterIP;
      delete spec.clusterIPs;
    }
    if (sameListStrict(spec.ipFamilies, oldSpec.ipFamilies)) delete spec.ipFamilies;
    if ((spec.ipFamilyPolicy ?? '') === (oldSpec.ipFamilyPolicy ?? '')) delete spec.ipFamilyPolicy;
  }
  if (usesNodePorts(oldService) && !usesNodePorts(service)) {
    const oldNumbers = new Set(nonZeroNodePorts(oldService));
    if (nonZeroNodePorts(service).every((n) => oldNumbers.has(n))) for (const port of spec.ports ?? []) port.nodePort = 0;
  }
  if (needsHealthCheck(oldService) && !needsHealthCheck(service) && spec.healthCheckNodePort === oldSpec.healthCheckNodePort) {
    spec.healthCheckNodePort = 0;
  }
}

/** reflect.DeepEqual on two lists: unlike sameList, an absent list differs from an empty one. */
function sameListStrict(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return (a === undefined) === (b === undefined) && sameList(a, b);
}

/** validateUpgradeDowngradeClusterIPs and validateUpgradeDowngradeIPFamilies. */
function upgradeDowngradeErrors(service: Service, oldService: Service): FieldError[] {
  if (serviceType(service) === SERVICE_TYPE.externalName || serviceType(oldService) === SERVICE_TYPE.externalName) return [];
  const errors: FieldError[] = [];
  const clusterIPsPath = FieldPath.of('spec', 'clusterIPs');
  const familiesPath = FieldPath.of('spec', 'ipFamilies');
  const policyPath = FieldPath.of('spec', 'ipFamilyPolicy');
  const singleStack = service.spec?.ipFamilyPolicy === 'SingleStack';
  const ips = service.spec?.clusterIPs ?? [];
  const oldIPs = oldService.spec?.clusterIPs ?? [];
  const changed = 'may not change once set';

  if (!(isHeadless(service) && isHeadless(oldService))) {
    if (oldIPs.length === ips.length) {
      oldIPs.forEach((ip, i) => ip !== ips[i] && errors.push(invalid(clusterIPsPath.index(i), badClusterIPs(service), changed)));
    } else if (oldIPs.length > ips.length) {
      if (ips.length === 0) errors.push(invalid(clusterIPsPath.index(0), badClusterIPs(service), 'primary clusterIP can not be unset'));
      if (oldIPs.length > 0 && ips.length > 0 && ips[0] !== oldIPs[0]) errors.push(invalid(clusterIPsPath.index(0), badClusterIPs(service), changed));
      if (ips.length === 1 && !singleStack) {
        errors.push(invalid(policyPath, badPolicy(service), "must be set to 'SingleStack' when releasing the secondary clusterIP"));
      }
    } else if (oldIPs.length > 0 && ips[0] !== oldIPs[0]) {
      errors.push(invalid(clusterIPsPath.index(0), badClusterIPs(service), changed));
    }
  }

  if (isHeadless(service) || isHeadless(oldService)) return errors;
  const families = service.spec?.ipFamilies ?? [];
  const oldFamilies = oldService.spec?.ipFamilies ?? [];
  if (oldFamilies.length === families.length) {
    // Upstream reports every changed family at index 0.
    oldFamilies.forEach((family, i) => family !== families[i] && errors.push(invalid(familiesPath.index(0), badIPFamilies(service), changed)));
  } else if (oldFamilies.length > families.length) {
    if (ips.length === 0) errors.push(invalid(familiesPath.index(0), badIPFamilies(service), 'primary ipFamily can not be unset'));
    if (families.length > 0 && families[0] !== oldFamilies[0]) errors.push(invalid(familiesPath.index(0), badClusterIPs(service), changed));
    if (families.length === 1 && !singleStack) {
      errors.push(invalid(policyPath, badPolicy(service), "must be set to 'SingleStack' when releasing the secondary ipFamily"));
    }
  } else if (oldFamilies.length > 0 && families.length > 0 && families[0] !== oldFamilies[0]) {
    errors.push(invalid(familiesPath.index(0), badClusterIPs(service), changed));
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------------------------
// Walking a plan against the claim store

export type ClaimResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };
export type PickResult =
  | { readonly ok: true; readonly value: ClaimValue }
  | { readonly ok: false; readonly reason: string };

/**
 * The API side of allocation. Reasons are shown to users inside upstream's messages, so a value someone else
 * holds must answer ALLOCATOR_ERRORS.ipAlreadyAllocated / portAlreadyAllocated, and an exhausted pick
 * ALLOCATOR_ERRORS.rangeFull. Other failures (API errors) pass their text through, as upstream does.
 */
export interface ClaimStore {
  /** Create the claim for exactly this value. */
  claim(value: ClaimValue): Promise<ClaimResult>;
  /** Create a claim for the first candidate that is free: skip known-taken ones, go on after losing a race. */
  claimFirstFree(candidates: Iterable<ClaimValue>): Promise<PickResult>;
  /** Dry-run only: whether a nodePort is held (upstream checks this, but not IPs, on dry-run). */
  isTaken?(value: ClaimValue): Promise<boolean>;
}

export interface ExecuteOptions {
  /** Claim nothing: requested values are checked, picks get upstream's dry-run placeholders. */
  readonly dryRun?: boolean;
  readonly random?: RandomBelow;
  /**
   * Values reserved for this Service (ServiceClaims with spec.reserved): a pick takes a fitting one first, in this
   * order (a ClusterIP of the step's family in a CIDR allocated from; a port in range), each at most once.
   */
  readonly reserved?: readonly ClaimValue[];
}

export type AllocationOutcome =
  /** Answer with `status`; release `claimed` (taken by this request before it failed). */
  | { readonly outcome: 'denied'; readonly status: Status; readonly claimed: readonly ClaimValue[] }
  /** Patch the request to `service`; release `release` once the write is known to have succeeded. */
  | {
      readonly outcome: 'allocated';
      readonly service: Service;
      readonly claimed: readonly ClaimValue[];
      readonly release: Releases;
    }
  /** Allow the request unchanged: the apiserver will reject it (plan.apiServerErrors) with its own 422. */
  | { readonly outcome: 'passThrough'; readonly errors: readonly FieldError[] };

/** Dry-run nodePort picks start just above this, outside the default range (upstream's dummy values). */
const DRY_RUN_NODE_PORT_FLOOR = 32768;

/** How many values executing `plan` may claim (create or reserve again); 0 when it claims nothing. */
export function plannedClaims(plan: AllocationPlan): number {
  if (plan.apiServerErrors.length > 0) return 0;
  const nodePorts = plan.nodePorts.filter((step) => step.kind === 'claim' || step.kind === 'pick').length;
  return plan.clusterIPs.length + nodePorts + (plan.healthCheckNodePort ? 1 : 0);
}

export async function executePlan(
  plan: AllocationPlan,
  config: AllocationConfig,
  store: ClaimStore,
  options: ExecuteOptions = {},
): Promise<AllocationOutcome> {
  if (plan.apiServerErrors.length > 0) return { outcome: 'passThrough', errors: plan.apiServerErrors };

  const dryRun = options.dryRun ?? false;
  const service = cloneService(plan.service);
  const spec = (service.spec ??= {});
  const name = serviceName(service);
  const claimed: ClaimValue[] = [];
  const denied = (status: Status): AllocationOutcome => ({ outcome: 'denied', status, claimed });

  // Every claim made is recorded, so that a walk that fails later hands back what it took.
  const claimOne = async (value: ClaimValue): Promise<ClaimResult> => {
    const result = dryRun ? { ok: true as const } : await store.claim(value);
    if (result.ok && !dryRun) claimed.push(value);
    return result;
  };

  // Reserved values not yet given to a pick, minus those the request holds or asks for already.
  const asked = new Set([...heldClaims(service), ...requestedValues(plan)].map(claimName));
  const reservations = (options.reserved ?? []).filter((value) => !asked.has(claimName(value)));
  const takeReservation = async (fits: (value: ClaimValue) => boolean): Promise<ClaimValue | undefined> => {
    for (;;) {
      const index = reservations.findIndex(fits);
      if (index < 0) return undefined;
      const [value] = reservations.splice(index, 1);
      // Lost to something else meanwhile (it cannot be another Service's): go on as if it were not reserved.
      if ((await claimOne(value)).ok) return value;
    }
  };

  const ipRanges = config.ipRanges; // one snapshot per request: ServiceCIDRs may come and go meanwhile
  const clusterIPsAtAllocation = [...(spec.clusterIPs ?? [])];
  for (const step of plan.clusterIPs) {
    const ranges = ipRanges.filter((range) => range.family === step.family);
    let ip: string;
    if (step.kind === 'claim') {
      const refuse = (reason: string) =>
        denied(clusterIPAllocationStatus(name, clusterIPsAtAllocation, step.requested, reason, config.valueStyle));
      if (dryRun) {
        // Upstream's dry-run asks one allocator (one CIDR, any) and so answers with the single-range error. It may
        // ask one that holds the IP: never refuse an IP some CIDR holds.
        if (ranges.length === 0) return refuse(ALLOCATOR_ERRORS.mismatchedNetwork);
        if (!rangeHoldingIP(ranges, step.requested)) {
          return refuse(ipNotInRangeReason(canonicalIPSloppy(step.requested) ?? step.requested, ranges[0].cidr));
        }
      } else if (!rangeHoldingIP(ranges, step.requested)) {
        return refuse(ALLOCATOR_ERRORS.mismatchedNetwork);
      }
      const result = await claimOne(ipClaim(step.requested));
      if (!result.ok) return refuse(result.reason);
      ip = step.requested;
    } else if (dryRun) {
      if (ranges.length === 0) return denied(dynamicClusterIPStatus(ALLOCATOR_ERRORS.rangeFull));
      ip = formatIP({ family: step.family, value: ranges[0].network });
    } else {
      const reserved = await takeReservation((v) => v.kind === 'ip' && v.family === step.family && rangeHoldingIP(ranges, v.ip) !== undefined);
      if (reserved?.kind === 'ip') {
        ip = reserved.ip;
        setClusterIP(spec, step.index, ip);
        continue;
      }
      const picked = await store.claimFirstFree(ipCandidates(ranges, options.random));
      if (!picked.ok) return denied(dynamicClusterIPStatus(picked.reason));
      if (picked.value.kind !== 'ip') throw new Error('claim store picked a nodePort for a ClusterIP');
      claimed.push(picked.value);
      ip = picked.value.ip;
    }
    setClusterIP(spec, step.index, ip);
  }

  // Ports this request holds. Upstream's allocator refuses a port the same request took for another port
  // number; a store that recognises its own claims would not, so the walk checks itself.
  const range = config.nodePortRange;
  const portsHere: number[] = [];
  const takePort = async (requested: number): Promise<ClaimResult> => {
    const alreadyHere = { ok: false as const, reason: ALLOCATOR_ERRORS.portAlreadyAllocated };
    if (portsHere.includes(requested)) return alreadyHere;
    if (dryRun) {
      // Upstream's dry-run checks only whether the port is held, not whether it is in range.
      if (await store.isTaken?.(nodePortClaim(requested))) return alreadyHere;
    } else {
      if (!portInRange(range, requested)) return { ok: false, reason: portNotInRangeReason(formatPortRange(range)) };
      const result = await claimOne(nodePortClaim(requested));
      if (!result.ok) return result;
    }
    portsHere.push(requested);
    return { ok: true };
  };
  const pickPort = async (): Promise<{ ok: true; port: number } | { ok: false; reason: string }> => {
    if (dryRun) {
      // Upstream: one past the highest port this request holds (requested ones included), 32769 for the first.
      const port = (portsHere.length > 0 ? Math.max(...portsHere) : DRY_RUN_NODE_PORT_FLOOR) + 1;
      portsHere.push(port);
      return { ok: true, port };
    }
    const reserved = await takeReservation((v) => v.kind === 'nodePort' && portInRange(range, v.port) && !portsHere.includes(v.port));
    if (reserved?.kind === 'nodePort') {
      portsHere.push(reserved.port);
      return { ok: true, port: reserved.port };
    }
    const picked = await store.claimFirstFree(portCandidates(range, portsHere, options.random));
    if (!picked.ok) return picked;
    if (picked.value.kind !== 'nodePort') throw new Error('claim store picked an IP for a nodePort');
    claimed.push(picked.value);
    portsHere.push(picked.value.port);
    return { ok: true, port: picked.value.port };
  };

  const ports = spec.ports ?? [];
  for (const step of plan.nodePorts) {
    if (step.kind === 'fail') return denied(step.status);
    if (step.kind === 'copy') {
      ports[step.portIndex].nodePort = ports[step.fromPortIndex].nodePort;
    } else if (step.kind === 'claim') {
      const result = await takePort(step.requested);
      if (!result.ok) return denied(nodePortAllocationStatus(name, step.portIndex, step.requested, result.reason));
      ports[step.portIndex].nodePort = step.requested;
    } else {
      const result = await pickPort();
      if (!result.ok) return denied(dynamicNodePortStatus(result.reason));
      ports[step.portIndex].nodePort = result.port;
    }
  }

  const healthCheck = plan.healthCheckNodePort;
  if (healthCheck?.kind === 'claim') {
    const result = await takePort(healthCheck.requested);
    if (!result.ok) return denied(healthCheckNodePortStatus(healthCheck.requested, result.reason));
  } else if (healthCheck?.kind === 'pick') {
    const result = await pickPort();
    if (!result.ok) return denied(healthCheckNodePortStatus(undefined, result.reason));
    spec.healthCheckNodePort = result.port;
  }

  return { outcome: 'allocated', service, claimed, release: dryRun ? NO_RELEASES : plan.release };
}

function setClusterIP(spec: NonNullable<Service['spec']>, index: number, ip: string): void {
  const clusterIPs = [...(spec.clusterIPs ?? [])];
  clusterIPs[index] = ip;
  spec.clusterIPs = clusterIPs;
  if (index === 0) spec.clusterIP = ip;
}

/** The values a plan asks for by number (static steps). */
function requestedValues(plan: AllocationPlan): ClaimValue[] {
  const values: ClaimValue[] = [];
  for (const step of plan.clusterIPs) if (step.kind === 'claim' && parseIPSloppy(step.requested)) values.push(ipClaim(step.requested));
  for (const step of plan.nodePorts) if (step.kind === 'claim') values.push(...nodePortClaimOrSkip(step.requested));
  if (plan.healthCheckNodePort?.kind === 'claim') values.push(...nodePortClaimOrSkip(plan.healthCheckNodePort.requested));
  return values;
}

/** Candidates over the family's CIDRs, tried in a random order (kube-apiserver's MetaAllocator, service-cidrs.ts). */
function* ipCandidates(ranges: readonly ServiceIPRange[], random: RandomBelow | undefined): Generator<ClaimValue> {
  for (const range of pickOrder(ranges, random)) for (const ip of dynamicIPCandidates(range, random)) yield { kind: 'ip', family: range.family, ip };
}

function* portCandidates(range: NodePortRange, exclude: readonly number[], random: RandomBelow | undefined): Generator<ClaimValue> {
  for (const port of dynamicPortCandidates(range, random)) if (!exclude.includes(port)) yield nodePortClaim(port);
}

// ---------------------------------------------------------------------------------------------------------------
// What a stored Service holds (delete, repair)

/** Whether a claim's value lies in the configured ranges (repair: "not within the service CIDR / port range"). */
export function claimInConfiguredRange(config: AllocationConfig, value: ClaimValue): boolean {
  if (value.kind === 'nodePort') return portInRange(config.nodePortRange, value.port);
  return rangeHoldingIP((config.existingIPRanges ?? config.ipRanges).filter((range) => range.family === value.family), value.ip) !== undefined;
}

/**
 * The claims deleting a Service frees (afterDelete): its ClusterIPs unless ExternalName or headless, its nodePorts,
 * and its healthCheckNodePort while it needs one.
 */
export function heldClaims(service: Service): ClaimValue[] {
  const held: ClaimValue[] = [];
  if (serviceType(service) !== SERVICE_TYPE.externalName && !isHeadless(service)) {
    for (const ip of service.spec?.clusterIPs ?? []) if (parseIPSloppy(ip)) held.push(ipClaim(ip));
  }
  held.push(...nonZeroNodePorts(service).flatMap(nodePortClaimOrSkip));
  if (needsHealthCheck(service)) held.push(...nodePortClaimOrSkip(service.spec?.healthCheckNodePort ?? 0));
  return dedupe(held);
}
