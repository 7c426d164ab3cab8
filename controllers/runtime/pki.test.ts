import { describe, it, expect } from '@jest/globals';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { createCertificateAuthority, generateSigningKeyPair, issueCertificate } from './pki.js';

describe('pki', () => {
  it('issues a server certificate that chains to the CA with the requested names', async () => {
    const ca = await createCertificateAuthority('test-ca');
    const leaf = await issueCertificate(ca, {
      commonName: 'kube-apiserver',
      dnsNames: ['localhost', 'kubernetes.default.svc'],
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    const caCert = new X509Certificate(ca.certPem);
    const cert = new X509Certificate(leaf.certPem);
    expect(caCert.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.checkHost('kubernetes.default.svc')).toBe('kubernetes.default.svc');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkPrivateKey(createPrivateKey(leaf.keyPem))).toBe(true);
    expect(Date.parse(cert.validTo)).toBeGreaterThan(Date.now() + 300 * 24 * 3600 * 1000);
  });

  it('puts organizations in the subject (system:masters for an admin client)', async () => {
    const ca = await createCertificateAuthority('test-ca');
    const leaf = await issueCertificate(ca, { commonName: 'admin', organizations: ['system:masters'], usage: 'client' });
    expect(new X509Certificate(leaf.certPem).subject).toBe('CN=admin\nO=system:masters');
  });

  it('makes a signing key pair whose halves match', async () => {
    const { privateKeyPem, publicKeyPem } = await generateSigningKeyPair();
    const derived = createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'pem' });
    expect(derived).toBe(publicKeyPem);
  });
});
