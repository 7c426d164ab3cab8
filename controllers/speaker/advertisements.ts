// L2Advertisement parsing, validation and selection: which advertisements apply to a pool, a Service and a node.
import type { L2Advertisement, PreferredNodeSelector } from '../../crds/l2advertisement.js';
import type { LabelSelector } from '../../crds/meta.js';
import { duplicateEntries, invalid, type FieldError } from '../../api/status.js';
import { anySelectorMatches, selectorMatches, validateSelector, validateSelectors, type Labels } from '../../allocators/loadbalancer/selector.js';

export interface ParsedL2Advertisement {
  name: string;
  /** ipAddressPools; with poolSelectors also empty the advertisement covers every pool. */
  pools: ReadonlySet<string>;
  poolSelectors: readonly LabelSelector[];
  nodeSelectors: readonly LabelSelector[];
  /** Empty means every eligible interface. */
  interfaces: readonly string[];
  serviceSelectors: readonly LabelSelector[];
  preferredNodeSelectors: readonly PreferredNodeSelector[];
}

/** Linux interface names: 1 to 15 bytes, no '/', ':' or whitespace, not '.' or '..'. */
const IFNAME = /^[^/:\s]{1,15}$/;

export function validateL2Advertisement(ad: L2Advertisement): FieldError[] {
  const spec = ad.spec ?? {};
  const errors: FieldError[] = [
    ...duplicateEntries(spec.ipAddressPools, 'spec.ipAddressPools'),
    ...validateSelectors(spec.ipAddressPoolSelectors, 'spec.ipAddressPoolSelectors'),
    ...validateSelectors(spec.nodeSelectors, 'spec.nodeSelectors'),
    ...validateSelectors(spec.serviceSelectors, 'spec.serviceSelectors'),
    ...duplicateEntries(spec.interfaces, 'spec.interfaces'),
  ];
  (spec.interfaces ?? []).forEach((name, i) => {
    if (!IFNAME.test(name) || name === '.' || name === '..') {
      errors.push(invalid(`spec.interfaces[${i}]`, name, "must be a network interface name: 1 to 15 characters without '/', ':' or spaces"));
    }
  });
  (spec.preferredNodeSelectors ?? []).forEach((p, i) => {
    const at = `spec.preferredNodeSelectors[${i}]`;
    if (!Number.isInteger(p.weight) || p.weight < 1 || p.weight > 100) errors.push(invalid(`${at}.weight`, p.weight, 'must be an integer between 1 and 100'));
    errors.push(...validateSelector(p.preference ?? {}, `${at}.preference`));
  });
  return errors;
}

export interface ParsedL2Advertisements {
  /** Sorted by name. */
  advertisements: ParsedL2Advertisement[];
  invalid: Map<string, FieldError[]>;
}

export function parseL2Advertisements(ads: readonly L2Advertisement[]): ParsedL2Advertisements {
  const advertisements: ParsedL2Advertisement[] = [];
  const invalidAds = new Map<string, FieldError[]>();
  for (const ad of ads) {
    const name = ad.metadata.name ?? '';
    const errors = validateL2Advertisement(ad);
    if (errors.length > 0) {
      invalidAds.set(name, errors);
      continue;
    }
    const spec = ad.spec ?? {};
    advertisements.push({
      name,
      pools: new Set(spec.ipAddressPools ?? []),
      poolSelectors: spec.ipAddressPoolSelectors ?? [],
      nodeSelectors: spec.nodeSelectors ?? [],
      interfaces: spec.interfaces ?? [],
      serviceSelectors: spec.serviceSelectors ?? [],
      preferredNodeSelectors: spec.preferredNodeSelectors ?? [],
    });
  }
  advertisements.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { advertisements, invalid: invalidAds };
}

/** Advertisements covering a pool: by name, by pool labels, or every pool when neither is given. Unknown names are ignored. */
export const advertisementsForPool = (
  ads: readonly ParsedL2Advertisement[],
  pool: { name: string; labels?: Labels },
): ParsedL2Advertisement[] =>
  ads.filter(
    (ad) => (ad.pools.size === 0 && ad.poolSelectors.length === 0) || ad.pools.has(pool.name) || anySelectorMatches(ad.poolSelectors, pool.labels),
  );

/** Of the advertisements covering a Service's pool, those whose serviceSelectors admit the Service. */
export const advertisementsForService = (ads: readonly ParsedL2Advertisement[], serviceLabels: Labels | undefined): ParsedL2Advertisement[] =>
  ads.filter((ad) => ad.serviceSelectors.length === 0 || anySelectorMatches(ad.serviceSelectors, serviceLabels));

/** Advertisements that let a node announce (empty nodeSelectors: every node). */
export const advertisementsForNode = (ads: readonly ParsedL2Advertisement[], nodeLabels: Labels | undefined): ParsedL2Advertisement[] =>
  ads.filter((ad) => ad.nodeSelectors.length === 0 || anySelectorMatches(ad.nodeSelectors, nodeLabels));

/** The union of the advertisements' interfaces; undefined when one of them allows every interface. */
export function interfacesOf(ads: readonly ParsedL2Advertisement[]): string[] | undefined {
  if (ads.some((ad) => ad.interfaces.length === 0)) return undefined;
  return [...new Set(ads.flatMap((ad) => ad.interfaces))].sort();
}

/** A node's preference score: the weights of every matching preferredNodeSelector of the advertisements. */
export const preferenceScore = (ads: readonly ParsedL2Advertisement[], nodeLabels: Labels | undefined): number =>
  ads.reduce((sum, ad) => sum + ad.preferredNodeSelectors.reduce((s, p) => s + (selectorMatches(p.preference, nodeLabels) ? p.weight : 0), 0), 0);
