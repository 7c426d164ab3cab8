// Label selectors (metav1.LabelSelector): matching and validation.
import type { LabelSelector } from '../../crds/meta.js';
import { forbidden, invalid, notSupported, required, type FieldError } from '../../api/status.js';

export type Labels = Readonly<Record<string, string>>;

const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** An empty selector matches everything (LabelSelectorAsSelector of `{}`). */
export function selectorMatches(selector: LabelSelector, labels: Labels | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, req.key);
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In':
        if (!has || !values.includes(l[req.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(l[req.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false; // an invalid selector selects nothing
    }
  }
  return true;
}

/** True when any selector of the list matches (lists of selectors are ORed). */
export const anySelectorMatches = (selectors: readonly LabelSelector[], labels: Labels | undefined): boolean =>
  selectors.some((s) => selectorMatches(s, labels));

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function labelKeyDetail(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return 'prefix part must be a lowercase RFC 1123 subdomain';
  if (name.length > 63 || !NAME.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

const labelValueOK = (v: string): boolean => v === '' || (v.length <= 63 && NAME.test(v));

/** Validation of metav1validation.ValidateLabelSelector, with field paths under `field`. */
export function validateSelector(selector: LabelSelector, field: string): FieldError[] {
  const out: FieldError[] = [];
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    const keyDetail = labelKeyDetail(k);
    if (keyDetail) out.push(invalid(`${field}.matchLabels`, k, keyDetail));
    if (!labelValueOK(v)) out.push(invalid(`${field}.matchLabels`, v, 'a valid label must be 63 characters or less, alphanumeric at both ends'));
  }
  (selector.matchExpressions ?? []).forEach((req, i) => {
    const at = `${field}.matchExpressions[${i}]`;
    const keyDetail = labelKeyDetail(req.key ?? '');
    if (keyDetail) out.push(invalid(`${at}.key`, req.key ?? null, keyDetail));
    const values = req.values ?? [];
    if (!OPERATORS.includes(req.operator)) out.push(notSupported(`${at}.operator`, req.operator, OPERATORS));
    else if ((req.operator === 'In' || req.operator === 'NotIn') && values.length === 0) {
      out.push(required(`${at}.values`, "must be specified when `operator` is 'In' or 'NotIn'"));
    } else if ((req.operator === 'Exists' || req.operator === 'DoesNotExist') && values.length > 0) {
      out.push(forbidden(`${at}.values`, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
    }
    values.forEach((v, j) => {
      if (!labelValueOK(v)) out.push(invalid(`${at}.values[${j}]`, v, 'a valid label must be 63 characters or less, alphanumeric at both ends'));
    });
  });
  return out;
}

export const validateSelectors = (selectors: readonly LabelSelector[] | undefined, field: string): FieldError[] =>
  (selectors ?? []).flatMap((s, i) => validateSelector(s, `${field}[${i}]`));

/** labels.Set.String(): sorted `k=v` pairs joined by commas. */
export const labelSetString = (labels: Labels | undefined): string =>
  Object.keys(labels ?? {})
    .sort()
    .map((k) => `${k}=${(labels ?? {})[k]}`)
    .join(',');
