// An admission webhook's serving certificate and the CA bundle the API server trusts it by.
//
// planCertificates is pure: (the stored set, what the webhook configurations trust, settings, now) → keep, renew
// the serving certificate, or rotate the CA. The rule that keeps every replica reachable: a certificate a replica
// may serve is always signed by a CA the configurations trust. So a new CA is first added to the bundle while the
// old serving certificate stays in use; the serving certificate moves to the new CA only once the configurations
// carry it (published), at its own next renewal. A CA leaves the bundle only when expired, and then so is every
// certificate it signed.
import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { createCertificateAuthority, issueCertificate, type CertificateAuthority } from '../pki.js';

const DAY_MS = 24 * 3600 * 1000;

/** Ten years: a CA is rotated two serving lifetimes before its end, so this only bounds how often. */
export const DEFAULT_CA_VALIDITY_MS = 3650 * DAY_MS;

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
  | { readonly kind: 'renew-serving' | 'rotate-ca'; readonly reason: string };

interface CertInfo {
  readonly pem: string;
  readonly cert: X509Certificate;
  readonly notAfter: number;
}

function info(pem: string): CertInfo | undefined {
  try {
    const cert = new X509Certificate(pem);
    return { pem, cert, notAfter: Date.parse(cert.validTo) };
  } catch {
    return undefined;
  }
}

export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)?.map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`)) ?? [];
}

/** The readable, unexpired CAs of a bundle, in its order. */
export function liveAuthorities(bundle: string, now: number): string[] {
  return splitPemBundle(bundle).filter((pem) => (info(pem)?.notAfter ?? 0) > now);
}

/** Whether `certPem` was signed by one of the CAs of `bundle` (expiry aside). */
export function signedByBundle(certPem: string, bundle: string): boolean {
  const cert = info(certPem)?.cert;
  if (!cert) return false;
  return splitPemBundle(bundle).some((pem) => {
    const ca = info(pem)?.cert;
    return ca !== undefined && cert.verify(ca.publicKey);
  });
}

function keyMatches(cert: X509Certificate, keyPem: string): boolean {
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** A serving certificate is renewed when a third of its configured lifetime is left (notBefore is backdated). */
const renewAt = (serving: CertInfo, settings: CertificateSettings): number => serving.notAfter - settings.servingValidityMs / 3;

/**
 * The next step for `set`. `publishedBundlePem` is the caBundle every webhook configuration holds: a serving
 * certificate in use moves to a new CA only once that CA is published there.
 */
export function planCertificates(set: CertificateSet, publishedBundlePem: string, settings: CertificateSettings, now: number): CertificatePlan {
  const signer = info(splitPemBundle(set.caBundlePem)[0] ?? '');
  if (!signer || now >= signer.notAfter || !keyMatches(signer.cert, set.caKeyPem)) {
    return { kind: 'rotate-ca', reason: 'the CA or its key is missing, unreadable or expired' };
  }
  // The CA must outlive every serving certificate it may still sign, plus one serving lifetime of overlap.
  const rotateCAAt = signer.notAfter - 2 * settings.servingValidityMs;
  if (now >= rotateCAAt) return { kind: 'rotate-ca', reason: 'the CA expires within two serving lifetimes' };
  const serving = info(set.certPem);
  const due = serving ? dueReason(serving, set, settings, now) : 'the serving certificate is missing or unreadable';
  if (serving && due === undefined) return { kind: 'keep', recheckInMs: Math.max(1000, Math.min(renewAt(serving, settings), rotateCAAt) - now) };
  // Even a broken serving certificate waits for this: the loop publishes before it renews, so only within one step.
  if (due === undefined || !splitPemBundle(publishedBundlePem).includes(signer.pem)) return { kind: 'keep', recheckInMs: 1000 };
  return { kind: 'renew-serving', reason: due };
}

/** Why the serving certificate must be renewed, if it must. */
function dueReason(serving: CertInfo, set: CertificateSet, settings: CertificateSettings, now: number): string | undefined {
  if (!keyMatches(serving.cert, set.keyPem) || now >= serving.notAfter || !signedByBundle(set.certPem, liveAuthorities(set.caBundlePem, now).join(''))) {
    return 'the serving certificate does not match its key, is expired or is not signed by a trusted CA';
  }
  if (now >= renewAt(serving, settings)) return 'the serving certificate is in the last third of its lifetime';
  if (serving.notAfter - now > settings.servingValidityMs) return 'the serving certificate outlives the configured validity';
  const missing = missingHosts(serving.cert, settings);
  return missing.length > 0 ? `the serving certificate does not name ${missing.join(', ')}` : undefined;
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

export async function newCertificateSet(settings: CertificateSettings, now: number): Promise<CertificateSet> {
  const ca = await createCertificateAuthority('switchboard-webhook-ca', settings.caValidityMs / DAY_MS, now);
  const serving = await issueServing(ca, settings, now);
  return { caBundlePem: ca.certPem, caKeyPem: ca.keyPem, ...serving };
}

/** A new serving certificate from the newest CA; expired CAs leave the bundle. */
export async function renewServing(set: CertificateSet, settings: CertificateSettings, now: number): Promise<CertificateSet> {
  const bundle = liveAuthorities(set.caBundlePem, now);
  const ca = await loadAuthority(bundle[0], set.caKeyPem);
  const serving = await issueServing(ca, settings, now);
  return { ...set, caBundlePem: bundle.join(''), ...serving };
}

/** A new CA in front of the bundle's live ones; the serving certificate is left as it is (see the file comment). */
export async function rotateCA(set: CertificateSet, settings: CertificateSettings, now: number): Promise<CertificateSet> {
  const ca = await createCertificateAuthority('switchboard-webhook-ca', settings.caValidityMs / DAY_MS, now);
  return { ...set, caBundlePem: ca.certPem + liveAuthorities(set.caBundlePem, now).join(''), caKeyPem: ca.keyPem };
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
    issuedAt: now,
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
