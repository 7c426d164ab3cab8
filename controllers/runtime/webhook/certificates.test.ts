import { describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { type CertificateSettings, liveAuthorities, newCertificateSet, planCertificates, renewServing, rotateCA, signedByBundle, splitPemBundle } from './certificates.js';

const HOUR = 3600_000;
const settings: CertificateSettings = { servingValidityMs: 30 * 24 * HOUR, caValidityMs: 3650 * 24 * HOUR, dnsNames: ['sb.system.svc'], ipAddresses: [] };

describe('webhook certificates', () => {
  it('keeps a fresh set and says when to look again', async () => {
    const set = await newCertificateSet(settings, Date.now());
    const plan = planCertificates(set, set.caBundlePem, settings, Date.now());
    expect(plan.kind).toBe('keep');
    // Renewal is due with a third of the lifetime left: about 20 days from now.
    if (plan.kind === 'keep') expect(Math.abs(plan.recheckInMs - 20 * 24 * HOUR)).toBeLessThan(HOUR);
    const serving = new X509Certificate(set.certPem);
    expect(serving.subjectAltName).toBe('DNS:sb.system.svc');
    expect(serving.verify(new X509Certificate(set.caBundlePem).publicKey)).toBe(true);
  });

  it('renews the serving certificate in the last third of its life, for new hosts, or for a shorter validity', async () => {
    const set = await newCertificateSet(settings, Date.now());
    expect(planCertificates(set, set.caBundlePem, settings, Date.now() + 21 * 24 * HOUR)).toMatchObject({ kind: 'renew-serving' });
    expect(planCertificates(set, set.caBundlePem, { ...settings, ipAddresses: ['127.0.0.1'] }, Date.now())).toEqual({
      kind: 'renew-serving',
      reason: 'the serving certificate does not name 127.0.0.1',
    });
    expect(planCertificates(set, set.caBundlePem, { ...settings, servingValidityMs: HOUR }, Date.now())).toMatchObject({ kind: 'renew-serving' });
    const renewed = await renewServing(set, settings, Date.now());
    expect(renewed.caBundlePem).toBe(set.caBundlePem);
    expect(renewed.certPem).not.toBe(set.certPem);
    expect(planCertificates(renewed, renewed.caBundlePem, settings, Date.now()).kind).toBe('keep');
  });

  it('rotates the CA by adding the new one first and keeping the serving certificate until its own renewal', async () => {
    const shortCA = { ...settings, caValidityMs: 90 * 24 * HOUR };
    const set = await newCertificateSet(shortCA, Date.now());
    const inRotation = Date.now() + 31 * 24 * HOUR; // less than two serving lifetimes left on the CA
    expect(planCertificates(set, set.caBundlePem, shortCA, inRotation)).toMatchObject({ kind: 'rotate-ca' });
    const rotated = await rotateCA(set, shortCA, Date.now());
    const bundle = splitPemBundle(rotated.caBundlePem);
    expect(bundle).toHaveLength(2);
    expect(bundle[1]).toBe(set.caBundlePem);
    expect(rotated.certPem).toBe(set.certPem); // still trusted through the old CA
    expect(planCertificates(rotated, rotated.caBundlePem, shortCA, Date.now()).kind).toBe('keep');
    const renewed = await renewServing(rotated, shortCA, Date.now());
    expect(new X509Certificate(renewed.certPem).verify(new X509Certificate(bundle[0]).publicKey)).toBe(true);
  });

  it('renews what it cannot read: a new serving certificate at once, a new CA in front of the readable ones', async () => {
    const set = await newCertificateSet(settings, Date.now());
    expect(planCertificates({ ...set, certPem: 'garbage' }, set.caBundlePem, settings, Date.now())).toMatchObject({ kind: 'renew-serving' });
    const keyless = { ...set, caKeyPem: '' }; // e.g. a Secret written by an older release: ca.crt, tls.crt, tls.key
    expect(planCertificates(keyless, set.caBundlePem, settings, Date.now())).toMatchObject({ kind: 'rotate-ca' });
    const rotated = await rotateCA(keyless, settings, Date.now());
    expect(splitPemBundle(rotated.caBundlePem)).toEqual([expect.any(String), set.caBundlePem]);
    expect(rotated.certPem).toBe(set.certPem);
  });

  it('moves a serving certificate in use to a new CA only once the webhook configurations trust that CA', async () => {
    const shortCA = { ...settings, caValidityMs: 90 * 24 * HOUR };
    const rotated = await rotateCA(await newCertificateSet(shortCA, Date.now()), shortCA, Date.now());
    const [newCA, oldCA] = splitPemBundle(rotated.caBundlePem);
    const renewalDue = Date.now() + 21 * 24 * HOUR;
    expect(planCertificates(rotated, oldCA, shortCA, renewalDue)).toEqual({ kind: 'keep', recheckInMs: 1000 });
    expect(planCertificates(rotated, newCA + oldCA, shortCA, renewalDue)).toMatchObject({ kind: 'renew-serving' });
    // Even a certificate nobody can use waits: the loop publishes before it renews, so only within one step.
    expect(planCertificates({ ...rotated, certPem: '' }, oldCA, shortCA, Date.now())).toEqual({ kind: 'keep', recheckInMs: 1000 });
    expect(planCertificates({ ...rotated, certPem: '' }, newCA, shortCA, Date.now())).toMatchObject({ kind: 'renew-serving' });
  });

  it('drops only expired CAs from a bundle', async () => {
    const set = await newCertificateSet(settings, Date.now());
    expect(liveAuthorities(set.caBundlePem + 'junk', Date.now())).toEqual([set.caBundlePem]);
    expect(liveAuthorities(set.caBundlePem, Date.now() + 3651 * 24 * HOUR)).toEqual([]);
    expect(signedByBundle(set.certPem, set.caBundlePem)).toBe(true);
    expect(signedByBundle(set.certPem, (await newCertificateSet(settings, Date.now())).caBundlePem)).toBe(false);
  });
});
