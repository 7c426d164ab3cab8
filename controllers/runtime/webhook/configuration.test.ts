import { describe, expect, it } from '@jest/globals';
import { newCertificateSet, type CertificateSettings } from './certificates.js';
import { clientConfig, mergedBundle } from './configuration.js';

const DAY = 24 * 3600_000;
const settings: CertificateSettings = { servingValidityMs: DAY, caValidityMs: 10 * DAY, dnsNames: ['hook.system.svc'], ipAddresses: [] };

describe('the configuration writer', () => {
  it('adds the CAs a configuration lacks in front and keeps every valid CA it trusts, in its order', async () => {
    const now = Date.now();
    const [a, b, c] = await Promise.all([newCertificateSet(settings, now), newCertificateSet(settings, now), newCertificateSet(settings, now)]);
    const [caA, caB, caC] = [a.caBundlePem, b.caBundlePem, c.caBundlePem];
    expect(mergedBundle(caB + caA, caA, now)).toBe(caB + caA);
    // A writer with an older view of the Secret leaves the newer CA where it is.
    expect(mergedBundle(caA, caB + caA, now)).toBe(caB + caA);
    expect(mergedBundle(caC, caB + caA, now)).toBe(caC + caB + caA);
    expect(mergedBundle(caA, '', now)).toBe(caA);
    expect(mergedBundle(caA, 'not a certificate', now)).toBe(caA);
  });

  it('drops a CA only once it has expired', async () => {
    const now = Date.now();
    const old = await newCertificateSet(settings, now - 11 * DAY);
    const current = await newCertificateSet(settings, now);
    expect(mergedBundle(current.caBundlePem, current.caBundlePem + old.caBundlePem, now)).toBe(current.caBundlePem);
    expect(mergedBundle(current.caBundlePem + old.caBundlePem, '', now)).toBe(current.caBundlePem);
  });

  it('points the API server at a URL or a Service path with the bundle in base64', () => {
    expect(clientConfig({ url: 'https://127.0.0.1:9443/' }, '/validate', 'CA')).toEqual({ url: 'https://127.0.0.1:9443/validate', caBundle: Buffer.from('CA').toString('base64') });
    expect(clientConfig({ service: { namespace: 'sys', name: 'hook', port: 443 } }, '/validate', 'CA')).toEqual({
      service: { namespace: 'sys', name: 'hook', port: 443, path: '/validate' },
      caBundle: Buffer.from('CA').toString('base64'),
    });
  });
});
