import { describe, expect, it } from '@jest/globals';
import { endpointsJob, parseEndpointsJobFlags } from './endpoints.js';

const defaults = Object.fromEntries(Object.entries(endpointsJob.flags).map(([name, flag]) => [name, flag.default]));

describe('endpoints job flags', () => {
  it('defaults to kube-controller-manager’s values: a drop-in replacement', () => {
    expect(parseEndpointsJobFlags(defaults)).toEqual({
      namespace: '',
      endpointSlice: { managedBy: 'endpointslice-controller.k8s.io', maxEndpointsPerSlice: 100, workers: 5, batchPeriodMs: 0 },
      endpoints: { managedBy: 'endpoint-controller', workers: 5, batchPeriodMs: 0 },
      mirroring: { managedBy: 'endpointslicemirroring-controller.k8s.io', maxEndpointsPerSubset: 1000, workers: 5, batchPeriodMs: 0 },
    });
  });

  it('takes other managed-by values, batch periods and limits, and turns controllers off', () => {
    const config = parseEndpointsJobFlags({
      ...defaults,
      'endpointslice-managed-by': 'endpointslice-controller.switchboard.dev',
      'max-endpoints-per-slice': '1000',
      'endpointslice-updates-batch-period': '1500ms',
      'endpoints-managed-by': '',
      'endpointslice-mirroring-controller': 'false',
    });
    expect(config.endpointSlice).toMatchObject({ managedBy: 'endpointslice-controller.switchboard.dev', maxEndpointsPerSlice: 1000, batchPeriodMs: 1500 });
    expect(config.endpoints?.managedBy).toBeNull();
    expect(config.mirroring).toBeUndefined();
  });

  it.each([
    [{ 'max-endpoints-per-slice': '0' }, '--max-endpoints-per-slice: must be an integer from 1 to 1000, got "0"'],
    [{ 'max-endpoints-per-slice': '1001' }, '--max-endpoints-per-slice: must be an integer from 1 to 1000'],
    [{ 'max-endpoints-per-slice': 'lots' }, '--max-endpoints-per-slice: must be an integer'],
    [{ 'mirroring-max-endpoints-per-subset': '2.5' }, '--mirroring-max-endpoints-per-subset'],
    [{ 'concurrent-service-endpoint-syncs': '51' }, '--concurrent-service-endpoint-syncs: must be an integer from 1 to 50'],
    [{ 'endpoint-updates-batch-period': 'soon' }, '--endpoint-updates-batch-period: invalid duration'],
    [{ 'endpointslice-managed-by': 'not a label value' }, '--endpointslice-managed-by: "not a label value" is not a valid label value'],
    [{ 'endpointslice-managed-by': '' }, '--endpointslice-managed-by'],
    [{ 'mirroring-managed-by': 'x'.repeat(64) }, '--mirroring-managed-by'],
    [{ 'endpoints-controller': 'sometimes' }, '--endpoints-controller: expected true or false'],
    [{ 'mirroring-managed-by': 'endpointslice-controller.k8s.io' }, '--endpointslice-managed-by and --mirroring-managed-by must differ'],
  ])('refuses %j with a clear error', (override, message) => {
    expect(() => parseEndpointsJobFlags({ ...defaults, ...override })).toThrow(message);
  });

  it('only checks the flags of controllers that run', () => {
    expect(() => parseEndpointsJobFlags({ ...defaults, 'endpointslice-controller': 'false', 'max-endpoints-per-slice': '0' })).not.toThrow();
  });
});
