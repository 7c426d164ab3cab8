// The webhook's serving certificate and the CA bundle the API server trusts it by.
//
// planCertificates is pure: (the stored set, settings, now) → keep, renew the serving certificate, or rotate the
// CA. Rotation never breaks a call in flight: a new CA is first added to the bundle (the webhook configurations
// get it) while the old serving certificate stays in use; the serving certificate moves to the new CA only at
// its own next renewal, at least one serving lifetime later. Expired CAs drop out of the bundle then.
import { X509Certificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { createCertificateAuthority, issueCertificate, type CertificateAuthority } from '../pki.js';

const DAY_MS = 24 * 3600 * 1000;

export interface CertificateSettings {
  readonly servingValidityMs: number;
  readonly caValidityMs: number;
  /** Names the API server dials: the Service's DNS names, or the host of the webhook URL. */
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

export interface CertificateSet {
  /** Trusted CAs, newest first: the webhook configurations' caBundle. */
  readonly caBundlePem: string;
  /** Key of the newest CA, which signs serving certificates. */
  readonly caKeyPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export type CertificatePlan =
  | { readonly kind: 'keep'; readonly recheckInMs: number }
  | { readonly kind: 'renew-serving' | 'rotate-ca' | 'recreate'; readonly reason: string };

interface CertInfo {
  readonly cert: X509Certificate;
  readonly notAfter: number;
}

function info(pem: string): CertInfo | undefined {
  try {
    const cert = new X509Certificate(pem);
    return { cert, notAfter: Date.parse(cert.validTo) };
  } catch {
    return undefined;
  }
}

export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)?.map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`)) ?? [];
}

/** A serving certificate is renewed when a third of its configured lifetime is left (notBefore is backdated). */
const renewAt = (serving: CertInfo, settings: CertificateSettings): number => serving.notAfter - settings.servingValidityMs / 3;

export function planCertificates(set: CertificateSet, settings: CertificateSettings, now: number): CertificatePlan {
  const bundle = splitPemBundle(set.caBundlePem).map(info);
  const signer = bundle[0];
  const serving = info(set.certPem);
  if (!signer || !serving || bundle.some((ca) => ca === undefined) || !set.caKeyPem || !set.keyPem) {
    return { kind: 'recreate', reason: 'the stored certificates are missing or unreadable' };
  }
  // The CA must outlive every serving certificate it may still sign, plus one serving lifetime of overlap.
  const rotateCAAt = signer.notAfter - 2 * settings.servingValidityMs;
  if (now >= rotateCAAt) return { kind: 'rotate-ca', reason: 'the CA expires within two serving lifetimes' };
  const trusted = bundle.some((ca) => ca !== undefined && now < ca.notAfter && serving.cert.verify(ca.cert.publicKey));
  if (!trusted) return { kind: 'renew-serving', reason: 'the serving certificate is not signed by a trusted CA' };
  if (now >= renewAt(serving, settings)) return { kind: 'renew-serving', reason: 'the serving certificate is in the last third of its lifetime' };
  if (serving.notAfter - now > settings.servingValidityMs) return { kind: 'renew-serving', reason: 'the serving certificate outlives the configured validity' };
  const missing = missingHosts(serving.cert, settings);
  if (missing.length > 0) return { kind: 'renew-serving', reason: `the serving certificate does not name ${missing.join(', ')}` };
  return { kind: 'keep', recheckInMs: Math.max(1000, Math.min(renewAt(serving, settings), rotateCAAt) - now) };
}

function missingHosts(cert: X509Certificate, settings: CertificateSettings): string[] {
  const names = new Set((cert.subjectAltName ?? '').split(', ').map((entry) => entry.replace(/^IP Address:/, 'IP:')));
  return [
    ...settings.dnsNames.filter((name) => !names.has(`DNS:${name}`)),
    ...settings.ipAddresses.filter((ip) => !names.has(`IP:${ip}`)),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Making new sets (asynchronous only because WebCrypto is)

export async function newCertificateSet(settings: CertificateSettings): Promise<CertificateSet> {
  const ca = await createCertificateAuthority('switchboard-webhook-ca', settings.caValidityMs / DAY_MS);
  const serving = await issueServing(ca, settings, Date.now());
  return { caBundlePem: ca.certPem, caKeyPem: ca.keyPem, ...serving };
}

/** A new serving certificate from the newest CA; expired CAs leave the bundle. */
export async function renewServing(set: CertificateSet, settings: CertificateSettings, now: number): Promise<CertificateSet> {
  const bundle = splitPemBundle(set.caBundlePem);
  const ca = await loadAuthority(bundle[0], set.caKeyPem);
  const serving = await issueServing(ca, settings, now);
  const live = bundle.filter((pem) => (info(pem)?.notAfter ?? 0) > now);
  return { ...set, caBundlePem: live.join(''), ...serving };
}

/** A new CA in front of the bundle; the serving certificate is left as it is (see the file comment). */
export async function rotateCA(set: CertificateSet, settings: CertificateSettings): Promise<CertificateSet> {
  const ca = await createCertificateAuthority('switchboard-webhook-ca', settings.caValidityMs / DAY_MS);
  return { ...set, caBundlePem: ca.certPem + set.caBundlePem, caKeyPem: ca.keyPem };
}

async function issueServing(ca: CertificateAuthority, settings: CertificateSettings, now: number): Promise<{ certPem: string; keyPem: string }> {
  // Never past the CA's own end: a certificate outliving its issuer would fail verification first.
  const caLeft = ca.cert.notAfter.getTime() - now;
  return issueCertificate(ca, {
    commonName: settings.dnsNames[0] ?? settings.ipAddresses[0] ?? 'switchboard-webhook',
    dnsNames: [...settings.dnsNames],
    ipAddresses: [...settings.ipAddresses],
    usage: 'server',
    validDays: Math.min(settings.servingValidityMs, caLeft) / DAY_MS,
  });
}

async function loadAuthority(certPem: string, keyPem: string): Promise<CertificateAuthority> {
  const cert = new x509.X509Certificate(certPem);
  const der = x509.PemConverter.decode(keyPem)[0];
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, algorithm, true, ['sign']);
  // The library types keys with the DOM's CryptoKey; Node's WebCrypto key is the same object at runtime.
  const publicKey = (await cert.publicKey.export(algorithm, ['verify'])) as unknown as webcrypto.CryptoKey;
  return { cert, keys: { publicKey, privateKey }, certPem, keyPem };
}
