import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocatorsJob } from './allocators.js';
import { loadBalancerJob } from './loadbalancer.js';
import { clientAuthenticationOf } from './webhook-client-flags.js';

describe('the webhook client-authentication flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'client-ca-'));
  const caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const notPem = join(dir, 'not-pem');
  writeFileSync(notPem, 'hello');

  it('are offered by both webhook jobs, off by default', () => {
    expect(allocatorsJob.flags['webhook-client-ca-file'].default).toBe('');
    expect(loadBalancerJob.flags['pool-webhook-client-ca-file'].default).toBe('');
    expect(loadBalancerJob.flags['pool-webhook-client-names'].default).toBe('');
  });

  it('read the CA and the names, or say what is wrong', () => {
    expect(clientAuthenticationOf({}, 'webhook')).toBeUndefined();
    expect(clientAuthenticationOf({ 'webhook-client-ca-file': caFile, 'webhook-client-names': ' a, b ,' }, 'webhook')).toEqual({
      caPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      allowedNames: ['a', 'b'],
    });
    expect(() => clientAuthenticationOf({ 'pool-webhook-client-names': 'a' }, 'pool-webhook')).toThrow('--pool-webhook-client-names needs --pool-webhook-client-ca-file');
    expect(() => clientAuthenticationOf({ 'webhook-client-ca-file': join(dir, 'missing') }, 'webhook')).toThrow(/^--webhook-client-ca-file: ENOENT/);
    expect(() => clientAuthenticationOf({ 'webhook-client-ca-file': notPem }, 'webhook')).toThrow(`--webhook-client-ca-file: ${notPem} holds no PEM certificate`);
  });
});
