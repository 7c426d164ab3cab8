// Dual-stack fields: the structural checks on clusterIPs/ipFamilies/ipFamilyPolicy and the resolution of
// ipFamilyPolicy and ipFamilies from the Service, the old Service on update, and the cluster's families
// (spec §1.4; upstream ValidateServiceClusterIPsRelatedFields and initIPFamilyFields, v1.34).
import type { Service } from '../../api/wire.js';
import { type IPFamily, familyOfIP, isIPFamily, otherFamily, parseIPLiteral } from '../../api/ip.js';
import {
  CLUSTER_IP_NONE,
  SERVICE_TYPE,
  cloneService,
  hasSelector,
  isHeadless,
  sameList,
  serviceType,
} from './service-fields.js';
import {
  type FieldError,
  FieldPath,
  duplicate,
  goSlice,
  goString,
  goStringPointer,
  invalid,
  notSupported,
  required,
} from '../../api/status.js';

export type IPFamilyPolicy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
const SUPPORTED_POLICIES: readonly IPFamilyPolicy[] = ['PreferDualStack', 'RequireDualStack', 'SingleStack'];
const SUPPORTED_FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];
const TYPES_WITH_CLUSTER_IPS: readonly string[] = [SERVICE_TYPE.clusterIP, SERVICE_TYPE.nodePort, SERVICE_TYPE.loadBalancer];

export interface ValidationOptions {
  /** The StrictIPCIDRValidation gate (alpha and off in v1.34): also refuse leading zeros and IPv4-mapped IPv6. */
  readonly strictIPValidation?: boolean;
}

const SPEC = FieldPath.of('spec');
const CLUSTER_IPS = SPEC.child('clusterIPs');
const IP_FAMILIES = SPEC.child('ipFamilies');
const IP_FAMILY_POLICY = SPEC.child('ipFamilyPolicy');

/** Bad values as upstream passes them: the internal types' Go names matter only to the go-syntax style. */
export const badClusterIPs = (service: Service) => goSlice('string', service.spec?.clusterIPs);
export const badIPFamilies = (service: Service) => goSlice('core.IPFamily', service.spec?.ipFamilies);
export const badIPFamily = (family: string) => goString('core.IPFamily', family);
export const badPolicy = (service: Service) => goStringPointer('core.IPFamilyPolicy', service.spec?.ipFamilyPolicy ?? undefined);

/** ValidateServiceClusterIPsRelatedFields: stage-1 checks that run before any family is resolved. */
export function validateClusterIPFields(
  service: Service,
  oldService: Service | undefined,
  options: ValidationOptions = {},
): FieldError[] {
  if (serviceType(service) === SERVICE_TYPE.externalName) return [];
  const spec = service.spec ?? {};
  const clusterIP = spec.clusterIP ?? '';
  const clusterIPs = spec.clusterIPs ?? [];
  const errors: FieldError[] = [];

  if (clusterIP !== '') {
    if (clusterIPs.length === 0) errors.push(required(CLUSTER_IPS));
    else if (clusterIPs[0] !== clusterIP) errors.push(invalid(CLUSTER_IPS, badClusterIPs(service), 'first value must match `clusterIP`'));
  } else if (clusterIPs.length !== 0) {
    errors.push(invalid(CLUSTER_IPS, badClusterIPs(service), 'must be empty when `clusterIP` is not specified'));
  }

  const seen = new Set<string>();
  (spec.ipFamilies ?? []).forEach((family, i) => {
    if (!isIPFamily(family)) errors.push(notSupported(IP_FAMILIES.index(i), badIPFamily(family), SUPPORTED_FAMILIES));
    if (seen.has(family)) errors.push(duplicate(IP_FAMILIES.index(i), badIPFamily(family)));
    seen.add(family);
  });

  if (spec.ipFamilyPolicy != null && !SUPPORTED_POLICIES.includes(spec.ipFamilyPolicy as IPFamilyPolicy)) {
    errors.push(notSupported(IP_FAMILY_POLICY, badPolicy(service), SUPPORTED_POLICIES));
  }

  let hasInvalidIPs = false;
  const existing = oldService?.spec?.clusterIPs ?? [];
  clusterIPs.forEach((ip, i) => {
    if (i === 0 && ip === CLUSTER_IP_NONE) {
      if (clusterIPs.length > 1) {
        hasInvalidIPs = true;
        errors.push(invalid(CLUSTER_IPS, badClusterIPs(service), "'None' must be the first and only value"));
      }
      return;
    }
    const ipErrors = existing.includes(ip) ? [] : legacyIPErrors(CLUSTER_IPS.index(i), ip, options);
    if (ipErrors.length > 0) hasInvalidIPs = true;
    errors.push(...ipErrors);
  });

  if (clusterIPs.length > 2) errors.push(invalid(CLUSTER_IPS, badClusterIPs(service), 'may only hold up to 2 values'));
  // Further checks would only restate a malformed or misplaced value.
  if (hasInvalidIPs) return errors;

  if (clusterIPs.length > 1) {
    const families = new Set(clusterIPs.map(ipFamilyOf));
    if (!(families.has('IPv4') && families.has('IPv6'))) {
      errors.push(invalid(CLUSTER_IPS, badClusterIPs(service), 'may specify no more than one IP for each IP family'));
    }
  }

  const families = spec.ipFamilies ?? [];
  if (!isHeadless(service) && clusterIPs.length > 0 && families.length > 0) {
    for (let i = 0; i < clusterIPs.length && i < families.length; i++) {
      const isIPv6 = ipFamilyOf(clusterIPs[i]) === 'IPv6';
      if (families[i] === 'IPv4' && isIPv6) {
        errors.push(invalid(CLUSTER_IPS.index(i), clusterIPs[i], `expected an IPv4 value as indicated by \`ipFamilies[${i}]\``));
      }
      if (families[i] === 'IPv6' && !isIPv6) {
        errors.push(invalid(CLUSTER_IPS.index(i), clusterIPs[i], `expected an IPv6 value as indicated by \`ipFamilies[${i}]\``));
      }
    }
  }
  return errors;
}

/** IsValidIPForLegacyField for one clusterIPs entry. */
function legacyIPErrors(path: FieldPath, value: string, options: ValidationOptions): FieldError[] {
  const literal = parseIPLiteral(value);
  if (!literal) return [invalid(path, value, 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)')];
  if (!options.strictIPValidation) return [];
  const errors: FieldError[] = [];
  if (literal.hasLeadingZeros) errors.push(invalid(path, value, 'must not have leading 0s'));
  // Go's strict parser yields no address (so nothing is "4in6") once it has refused the leading zeros.
  else if (literal.isIPv4Mapped) errors.push(invalid(path, value, 'must not be an IPv4-mapped IPv6 address'));
  return errors;
}

function ipFamilyOf(ip: string): IPFamily | 'unknown' {
  return familyOfIP(ip) ?? 'unknown';
}

export interface FamilyResolution {
  /** The Service with ipFamilyPolicy, ipFamilies (and, on a single-stack downgrade, clusterIPs) resolved. */
  readonly service: Service;
  /** Non-empty: kube-apiserver answers 422 with these itself; nothing may be allocated. */
  readonly errors: readonly FieldError[];
}

/**
 * initIPFamilyFields. `clusterFamilies` lists the configured families, primary (the first
 * --service-cluster-ip-range) first. Runs on dry-run too, so the answer is visible without allocating.
 */
export function resolveIPFamilies(
  newService: Service,
  oldService: Service | undefined,
  clusterFamilies: readonly IPFamily[],
  options: ValidationOptions = {},
): FamilyResolution {
  const service = cloneService(newService);
  if (serviceType(service) === SERVICE_TYPE.externalName) return { service, errors: [] };
  // A PreferDualStack Service never gains or loses a family because the cluster changed stack (issue 101681).
  if (isUnchangedPreferDualStack(service, oldService)) return { service, errors: [] };

  const spec = (service.spec ??= {});
  const headlessSelectorless = spec.clusterIP === CLUSTER_IP_NONE && !hasSelector(service);
  spec.ipFamilyPolicy ??= oldService?.spec?.ipFamilyPolicy ?? (headlessSelectorless ? 'RequireDualStack' : 'SingleStack');

  const structural = validateClusterIPFields(service, oldService, options);
  if (structural.length > 0) return { service, errors: structural };

  const errors: FieldError[] = [];
  const singleStack = spec.ipFamilyPolicy === 'SingleStack';
  if (oldService) {
    if (singleStack) {
      // Saying SingleStack while leaving both lists as they were is the way to drop the secondary family.
      if (sameList(oldService.spec?.clusterIPs, spec.clusterIPs) && (spec.clusterIPs?.length ?? 0) > 1) {
        spec.clusterIPs = spec.clusterIPs?.slice(0, 1);
      }
      if (sameList(oldService.spec?.ipFamilies, spec.ipFamilies) && (spec.ipFamilies?.length ?? 0) > 1) {
        spec.ipFamilies = spec.ipFamilies?.slice(0, 1);
      }
    } else {
      if (shrank(spec.clusterIPs, oldService.spec?.clusterIPs)) {
        errors.push(invalid(IP_FAMILY_POLICY, badPolicy(service), "must be 'SingleStack' to release the secondary cluster IP"));
      }
      if (shrank(spec.ipFamilies, oldService.spec?.ipFamilies)) {
        errors.push(invalid(IP_FAMILY_POLICY, badPolicy(service), "must be 'SingleStack' to release the secondary IP family"));
      }
    }
  }

  if (singleStack) {
    if (spec.clusterIPs?.length === 2) {
      errors.push(invalid(IP_FAMILY_POLICY, badPolicy(service), "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"));
    }
    if (spec.ipFamilies?.length === 2) {
      errors.push(invalid(IP_FAMILY_POLICY, badPolicy(service), "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"));
    }
  }

  // Families missing from ipFamilies are read off the given clusterIPs.
  const families = [...(spec.ipFamilies ?? [])];
  const clusterIPs = spec.clusterIPs ?? [];
  for (let i = 0; i < clusterIPs.length && clusterIPs[i] !== CLUSTER_IP_NONE; i++) {
    if (i < families.length) continue;
    const family = ipFamilyOf(clusterIPs[i]);
    if (family !== 'unknown' && clusterFamilies.includes(family)) families.push(family);
    else errors.push(invalid(CLUSTER_IPS.index(i), badClusterIPs(service), `${family} is not configured on this cluster`));
  }
  if (families.length > 0 || spec.ipFamilies !== undefined) spec.ipFamilies = families;
  if (errors.length > 0) return { service, errors };

  const primary = clusterFamilies[0];
  if (headlessSelectorless) {
    // Allowed both families even on a single-stack cluster: there is nothing to allocate.
    if (families.length === 0) families.push(primary);
    if (families.length < 2 && !singleStack) families.push(otherFamily(families[0] as IPFamily));
    spec.ipFamilies = families;
    return { service, errors };
  }

  if (spec.ipFamilyPolicy === 'RequireDualStack' && clusterFamilies.length < 2) {
    errors.push(invalid(IP_FAMILY_POLICY, badPolicy(service), 'this cluster is not configured for dual-stack services'));
  }
  families.forEach((family, i) => {
    if (!clusterFamilies.includes(family as IPFamily)) {
      errors.push(invalid(IP_FAMILIES.index(i), badIPFamily(family), 'not configured on this cluster'));
    }
  });
  if (errors.length > 0) return { service, errors };

  if (families.length === 0) families.push(primary);
  if (!singleStack && families.length === 1 && clusterFamilies.length === 2) families.push(otherFamily(families[0] as IPFamily));
  spec.ipFamilies = families;
  return { service, errors };
}

/** isMatchingPreferDualStackClusterIPFields: an update that leaves a PreferDualStack Service's IP fields alone. */
export function isUnchangedPreferDualStack(service: Service, oldService: Service | undefined): boolean {
  if (!oldService || service.spec?.ipFamilyPolicy == null) return false;
  const type = serviceType(service);
  if (serviceType(oldService) !== type || !TYPES_WITH_CLUSTER_IPS.includes(type)) return false;
  if (service.spec.ipFamilyPolicy !== 'PreferDualStack') return false;
  const oldPolicy = oldService.spec?.ipFamilyPolicy;
  if (oldPolicy != null && oldPolicy !== 'PreferDualStack') return false;
  return (
    sameList(oldService.spec?.clusterIPs, service.spec.clusterIPs) &&
    sameList(oldService.spec?.ipFamilies, service.spec.ipFamilies)
  );
}

/** reducedClusterIPs / reducedIPFamilies: an empty new list means "not specified", not "reduced". */
function shrank(now: readonly string[] | undefined, before: readonly string[] | undefined): boolean {
  return (now?.length ?? 0) > 0 && (now?.length ?? 0) < (before?.length ?? 0);
}
