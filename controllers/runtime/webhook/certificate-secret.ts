// The certificate set lives in one Secret that every replica serves from; any replica may create it (the API
// server keeps the first), only the leader renews it, always with a resourceVersion precondition.
import type { V1Secret } from '@kubernetes/client-node';
import { isAlreadyExists, isConflict, type KubeClient } from '../client.js';
import type { Logger } from '../log.js';
import type { Wire } from '../../../api/wire.js';
import {
  type CertificateSet,
  type CertificateSettings,
  newCertificateSet,
  planCertificates,
  renewServing,
  rotateCA,
} from './certificates.js';
import { Secrets } from '../../../api/resources.js';

export type Secret = Wire<V1Secret>;

const KEYS = { caBundle: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key' } as const;

const decode = (secret: Secret, key: string): string => Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');
const encode = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

export function certificateSetOf(secret: Secret): CertificateSet {
  return {
    caBundlePem: decode(secret, KEYS.caBundle),
    caKeyPem: decode(secret, KEYS.caKey),
    certPem: decode(secret, KEYS.cert),
    keyPem: decode(secret, KEYS.key),
  };
}

function secretData(set: CertificateSet): Record<string, string> {
  return {
    [KEYS.caBundle]: encode(set.caBundlePem),
    [KEYS.caKey]: encode(set.caKeyPem),
    [KEYS.cert]: encode(set.certPem),
    [KEYS.key]: encode(set.keyPem),
  };
}

export interface SecretRef {
  readonly namespace: string;
  readonly name: string;
}

/** The stored set, made first if there is none yet. */
export async function ensureCertificateSecret(client: KubeClient, ref: SecretRef, settings: CertificateSettings): Promise<Secret> {
  const existing = await client.getOrUndefined<Secret>(Secrets, ref.name, ref.namespace);
  if (existing) return existing;
  const secret: Secret = {
    metadata: { name: ref.name, namespace: ref.namespace, labels: { 'app.kubernetes.io/part-of': 'switchboard' } },
    type: 'kubernetes.io/tls',
    data: secretData(await newCertificateSet(settings)),
  };
  try {
    return await client.create(Secrets, secret);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    return client.get<Secret>(Secrets, ref.name, ref.namespace);
  }
}

/**
 * One renewal step if one is due (leader only). Returns the Secret as stored afterwards and when to look again;
 * a lost race (another writer) answers with a short recheck.
 */
export async function renewCertificateSecret(
  client: KubeClient,
  secret: Secret,
  settings: CertificateSettings,
  log: Logger,
): Promise<{ secret: Secret; recheckInMs: number }> {
  const now = Date.now();
  const set = certificateSetOf(secret);
  const plan = planCertificates(set, settings, now);
  if (plan.kind === 'keep') return { secret, recheckInMs: plan.recheckInMs };
  log.info('renewing webhook certificates', { step: plan.kind, reason: plan.reason });
  const next =
    plan.kind === 'recreate' ? await newCertificateSet(settings) : plan.kind === 'rotate-ca' ? await rotateCA(set, settings) : await renewServing(set, settings, now);
  try {
    const stored = await client.replace<Secret>(Secrets, { ...secret, data: { ...secret.data, ...secretData(next) } });
    return { secret: stored, recheckInMs: 0 };
  } catch (err) {
    if (!isConflict(err)) throw err;
    return { secret: await client.get<Secret>(Secrets, secret.metadata?.name ?? '', secret.metadata?.namespace), recheckInMs: 0 };
  }
}
