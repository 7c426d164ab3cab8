import { describe, expect, it } from '@jest/globals';
import { canonical } from '../runtime/webhook/configuration.js';
import { desiredConfigurations } from './webhook-configurations.js';

describe('webhook configurations', () => {
  it('register both webhooks on Service create and update, failing closed, without side effects on dry-run', () => {
    const [mutating, validating] = desiredConfigurations({ configurationName: 'sb', endpoint: { url: 'https://127.0.0.1:9443/' }, timeoutSeconds: 10 }, 'CA');
    expect(mutating.rt.kind).toBe('MutatingWebhookConfiguration');
    expect(validating.rt.kind).toBe('ValidatingWebhookConfiguration');
    const hook = mutating.object.webhooks?.[0] ?? {};
    expect(hook).toMatchObject({
      name: 'allocate.services.switchboard.dev',
      clientConfig: { url: 'https://127.0.0.1:9443/mutate-services', caBundle: Buffer.from('CA').toString('base64') },
      rules: [{ operations: ['CREATE', 'UPDATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['services'] }],
      failurePolicy: 'Fail',
      sideEffects: 'NoneOnDryRun',
      timeoutSeconds: 10,
      reinvocationPolicy: 'Never',
    });
    expect(validating.object.webhooks?.[0]).toMatchObject({ clientConfig: { url: 'https://127.0.0.1:9443/validate-services' } });
  });

  it('send reservations only (a matchCondition) to the reservation webhook, so the allocator\'s own claim writes never wait on it', () => {
    const [, validating] = desiredConfigurations({ configurationName: 'sb', endpoint: { url: 'https://127.0.0.1:9443' }, timeoutSeconds: 10 }, 'CA');
    expect(validating.object.webhooks?.[1]).toMatchObject({
      name: 'reservations.serviceclaims.switchboard.dev',
      clientConfig: { url: 'https://127.0.0.1:9443/validate-reservations' },
      rules: [{ operations: ['CREATE', 'UPDATE'], apiGroups: ['switchboard.dev'], apiVersions: ['v1beta1'], resources: ['serviceclaims'], scope: 'Cluster' }],
      failurePolicy: 'Fail',
      sideEffects: 'None',
      matchConditions: [{ name: 'reserved', expression: 'has(object.spec.reserved) && object.spec.reserved == true' }],
    });
  });

  it('call a Service in-cluster', () => {
    const [mutating] = desiredConfigurations({ configurationName: 'sb', endpoint: { service: { namespace: 'sys', name: 'sb', port: 443 } }, timeoutSeconds: 5 }, 'CA');
    expect(mutating.object.webhooks?.[0]).toMatchObject({ clientConfig: { service: { namespace: 'sys', name: 'sb', port: 443, path: '/mutate-services' } } });
  });

  it('compare stored and desired objects whatever their key order', () => {
    expect(canonical({ b: 1, a: [{ d: 2, c: 3 }] })).toBe(canonical({ a: [{ c: 3, d: 2 }], b: 1 }));
    expect(canonical({ a: [1, 2] })).not.toBe(canonical({ a: [2, 1] }));
  });
});
