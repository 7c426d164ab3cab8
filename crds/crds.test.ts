import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import { crdManifests, type JSONSchema } from './manifests.js';
import { CHART_CRDS, renderCRD } from './generate.js';
import type { IPAddressPool } from './ipaddresspool.js';
import type { L2Advertisement } from './l2advertisement.js';
import type { ServiceL2Status } from './servicel2status.js';
import { SWITCHBOARD_API_VERSION } from './meta.js';
import { asSwitchboard, metallbL2AdvertisementManifest, metallbPoolManifest } from '../testing/metallb-samples.js';

const pathOf = (file: string): string => fileURLToPath(new URL(`./${file}`, import.meta.url));

/** What the API server would do with `value`: prune unknown fields, reject wrong types and constraint violations. */
function check(value: unknown, schema: JSONSchema, path: string, out: string[]): void {
  if (value === undefined || value === null) return;
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) return void out.push(`${path}: not an object`);
      const record = value as Record<string, unknown>;
      for (const r of schema.required ?? []) if (!(r in record)) out.push(`${path}.${r}: Required value`);
      for (const [k, v] of Object.entries(record)) {
        const sub = schema.properties?.[k] ?? schema.additionalProperties;
        if (sub) check(v, sub, `${path}.${k}`, out);
        else if (path !== '.metadata') out.push(`${path}.${k}: pruned`); // metadata is the API server's own
      }
      return;
    }
    case 'array':
      if (!Array.isArray(value)) return void out.push(`${path}: not an array`);
      if (schema.minItems !== undefined && value.length < schema.minItems) out.push(`${path}: fewer than ${schema.minItems} items`);
      value.forEach((v, i) => check(v, schema.items ?? {}, `${path}[${i}]`, out));
      return;
    case 'string':
      if (typeof value !== 'string') return void out.push(`${path}: not a string`);
      if (schema.enum && !schema.enum.includes(value)) out.push(`${path}: not one of ${schema.enum.join(', ')}`);
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) out.push(`${path}: does not match ${schema.pattern}`);
      return;
    case 'integer':
      if (!Number.isInteger(value)) return void out.push(`${path}: not an integer`);
      if (schema.minimum !== undefined && (value as number) < schema.minimum) out.push(`${path}: below ${schema.minimum}`);
      if (schema.maximum !== undefined && (value as number) > schema.maximum) out.push(`${path}: above ${schema.maximum}`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') out.push(`${path}: not a boolean`);
      return;
    default:
      return;
  }
}

const schemaOf = (file: string): JSONSchema => crdManifests[file].spec.versions[0].schema.openAPIV3Schema;
const problems = (obj: unknown, file: string): string[] => {
  const out: string[] = [];
  check(obj, schemaOf(file), '', out);
  return out;
};

const selector = { matchLabels: { zone: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['edge'] }] };

describe('CRD manifests', () => {
  // A stale file fails here: `npm run generate` rewrites it.
  it.each(Object.keys(crdManifests))('%s matches crds/manifests.ts, and so does the Helm chart\'s copy', (file) => {
    const expected = renderCRD(crdManifests[file]);
    expect(readFileSync(pathOf(file), 'utf8')).toBe(expected);
    expect(readFileSync(pathOf(`../${CHART_CRDS}${file}`), 'utf8')).toBe(expected);
    expect(load(expected)).toEqual(crdManifests[file]);
  });

  it('the Helm chart holds no other CRD file', () => {
    expect(readdirSync(pathOf(`../${CHART_CRDS}`)).sort()).toEqual(Object.keys(crdManifests).sort());
  });

  it.each(Object.entries(crdManifests))('%s has a status subresource, short names, printer columns', (_file, crd) => {
    const v = crd.spec.versions[0];
    expect(crd.metadata.name).toBe(`${crd.spec.names.plural}.switchboard.dev`);
    expect(v.subresources.status).toEqual({});
    expect(crd.spec.names.shortNames.length).toBeGreaterThan(0);
    expect(v.additionalPrinterColumns.map((c) => c.name)).toContain('Age');
    expect(v.schema.openAPIV3Schema.properties?.status?.type).toBe('object');
  });

  it('keeps every field of MetalLB IPAddressPool and L2Advertisement manifests once their apiVersion is changed', () => {
    const pool = load(asSwitchboard(metallbPoolManifest('production'))) as IPAddressPool;
    expect(pool.apiVersion).toBe(SWITCHBOARD_API_VERSION);
    expect(problems(pool, 'ipaddresspool.yaml')).toEqual([]);
    const adv = load(asSwitchboard(metallbL2AdvertisementManifest('example', 'production'))) as L2Advertisement;
    expect(problems(adv, 'l2advertisement.yaml')).toEqual([]);
  });

  it('accepts the Switchboard additions and status, and flags what the API server would reject or prune', () => {
    const pool: IPAddressPool = {
      apiVersion: SWITCHBOARD_API_VERSION,
      kind: 'IPAddressPool',
      metadata: { name: 'p' },
      spec: { addresses: ['10.0.0.0/24'], allowNetworkAndBroadcast: true, disabled: true, serviceAllocation: { serviceSelectors: [selector] } },
      status: {
        assignedIPv4: 1,
        availableIPv4: 253,
        assignedIPv6: 0,
        availableIPv6: 0,
        conditions: [{ type: 'Valid', status: 'True', reason: 'Valid', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }],
      },
    };
    expect(problems(pool, 'ipaddresspool.yaml')).toEqual([]);
    const bad = { ...pool, spec: { addresses: [], autoAssign: 'yes', typo: 1, serviceAllocation: { priority: -1 } } };
    expect(problems(bad, 'ipaddresspool.yaml')).toEqual([
      '.spec.addresses: fewer than 1 items',
      '.spec.autoAssign: not a boolean',
      '.spec.typo: pruned',
      '.spec.serviceAllocation.priority: below 0',
    ]);
  });

  it('accepts a ServiceL2Status with its conditions', () => {
    const status: ServiceL2Status = {
      apiVersion: SWITCHBOARD_API_VERSION,
      kind: 'ServiceL2Status',
      metadata: { name: 'web', namespace: 'app' },
      status: {
        node: 'worker-1',
        serviceName: 'web',
        serviceNamespace: 'app',
        addresses: ['192.168.10.1'],
        interfaces: [{ name: 'eth0' }],
        conditions: [{ type: 'Announced', status: 'True', reason: 'Elected', message: 'x', lastTransitionTime: '2026-01-01T00:00:00Z' }],
      },
    };
    expect(problems(status, 'servicel2status.yaml')).toEqual([]);
    expect(problems({ ...status, status: { conditions: [{ type: 'Announced', status: 'Maybe' }] } }, 'servicel2status.yaml')).toEqual([
      '.status.conditions[0].lastTransitionTime: Required value',
      '.status.conditions[0].message: Required value',
      '.status.conditions[0].reason: Required value',
      '.status.conditions[0].status: not one of True, False, Unknown',
    ]);
  });
});
