// Certificates for TLS on loopback and in-cluster: a self-signed CA and leaf certificates it signs
// (ECDSA P-256), as PEM. Used by the local control plane and by the webhook's serving certificate.
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

// Node's WebCrypto is the standard one; only the DOM typing the library names differs.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const keyAlgorithm = { name: 'ECDSA', namedCurve: 'P-256' };
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 24 * 3600 * 1000;

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface CertificateAuthority extends KeyPairPem {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

export interface LeafOptions {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: 'server' | 'client' | 'both';
  validDays?: number;
  /** When it is issued (ms since the epoch); now by default. */
  issuedAt?: number;
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(keyAlgorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** PEM with LF line ends and a final newline, as files and kubeconfigs expect. */
function pem(der: ArrayBuffer, label: string): string {
  return `${x509.PemConverter.encode(der, label).replace(/\r\n/g, '\n').trimEnd()}\n`;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return pem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function serialNumber(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');
}

function distinguishedName(commonName: string, organizations: string[] = []): string {
  const escape = (v: string) => v.replace(/([,+"\\<>;=])/g, '\\$1');
  return [`CN=${escape(commonName)}`, ...organizations.map((o) => `O=${escape(o)}`)].join(', ');
}

/** A self-signed CA valid for `validDays` from `issuedAt` (ms since the epoch). */
export async function createCertificateAuthority(commonName: string, validDays = 3650, issuedAt = Date.now()): Promise<CertificateAuthority> {
  const keys = await generateKeys();
  const now = issuedAt;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: distinguishedName(commonName),
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + validDays * DAY_MS),
    signingAlgorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, certPem: pem(cert.rawData, 'CERTIFICATE'), keyPem: await privateKeyPem(keys.privateKey) };
}

export async function issueCertificate(ca: CertificateAuthority, options: LeafOptions): Promise<KeyPairPem> {
  const keys = await generateKeys();
  const now = options.issuedAt ?? Date.now();
  const usages: string[] = [];
  if (options.usage !== 'client') usages.push(x509.ExtendedKeyUsage.serverAuth);
  if (options.usage !== 'server') usages.push(x509.ExtendedKeyUsage.clientAuth);
  const altNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: distinguishedName(options.commonName, options.organizations),
    issuer: ca.cert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + (options.validDays ?? 365) * DAY_MS),
    signingAlgorithm,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(usages),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
      ...(altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension(altNames)] : []),
    ],
  });
  return { certPem: pem(cert.rawData, 'CERTIFICATE'), keyPem: await privateKeyPem(keys.privateKey) };
}

/** A bare key pair as PEM (PKCS#8 private, SPKI public), e.g. for service-account token signing. */
export async function generateSigningKeyPair(): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  const keys = await generateKeys();
  const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey);
  return { privateKeyPem: await privateKeyPem(keys.privateKey), publicKeyPem: pem(spki, 'PUBLIC KEY') };
}

/**
 * A serving certificate for `hosts` (DNS names and IP addresses) signed by a throwaway CA: what a server uses when it
 * is given none, as kube-controller-manager's secure port does without --tls-cert-file (clients then skip
 * verification or pin it, as Prometheus does with `insecure_skip_verify` for such targets).
 */
export async function selfSignedServingCertificate(hosts: string[], validDays = 365): Promise<KeyPairPem> {
  const ca = await createCertificateAuthority(`${hosts[0] ?? 'localhost'}-ca@${Math.floor(Date.now() / 1000)}`, validDays);
  const isIp = (h: string) => /^[\d.]+$/.test(h) || h.includes(':');
  return issueCertificate(ca, { commonName: hosts[0] ?? 'localhost', dnsNames: hosts.filter((h) => !isIp(h)), ipAddresses: hosts.filter(isIp), usage: 'server', validDays });
}
