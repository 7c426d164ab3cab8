// The certificate manager: one webhook's certificate set lives in one Secret that every replica serves from.
// Any replica may create the Secret (the API server keeps the first); only the leader renews it, always with a
// resourceVersion precondition, so two writers never both win with different sets.
import type { V1Secret } from '@kubernetes/client-node';
import { isAlreadyExists, isConflict, type KubeClient } from '../client.js';
import type { Logger } from '../log.js';
import type { Wire } from '../../../api/wire.js';
import { Secrets } from '../../../api/resources.js';
import {
  type CertificateSet,
  type CertificateSettings,
  newCertificateSet,
  planCertificates,
  renewServing,
  rotateCA,
} from './certificates.js';

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

export class CertificateManager {
  constructor(
    private readonly client: KubeClient,
    readonly secretRef: SecretRef,
    private readonly settings: CertificateSettings,
    private readonly log: Logger,
    /** The clock renewals are planned by (tests step it). */
    private readonly now: () => number = Date.now,
  ) {}

  /** The stored set, made first if there is none yet. */
  async ensure(): Promise<Secret> {
    const { name, namespace } = this.secretRef;
    const existing = await this.client.getOrUndefined<Secret>(Secrets, name, namespace);
    if (existing) return existing;
    const secret: Secret = {
      metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'switchboard' } },
      type: 'kubernetes.io/tls',
      data: secretData(await newCertificateSet(this.settings, this.now())),
    };
    try {
      return await this.client.create(Secrets, secret);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return this.client.get<Secret>(Secrets, name, namespace);
    }
  }

  /**
   * One renewal step if one is due (leader only); `publishedBundlePem` is what every webhook configuration trusts.
   * Returns the Secret as stored afterwards and when to look again; a lost race (another writer) answers with the
   * winner's Secret and an immediate recheck.
   */
  async renew(secret: Secret, publishedBundlePem: string): Promise<{ secret: Secret; recheckInMs: number }> {
    const now = this.now();
    const set = certificateSetOf(secret);
    const plan = planCertificates(set, publishedBundlePem, this.settings, now);
    if (plan.kind === 'keep') return { secret, recheckInMs: plan.recheckInMs };
    this.log.info('renewing webhook certificates', { secret: this.secretRef.name, step: plan.kind, reason: plan.reason });
    const next = plan.kind === 'rotate-ca' ? await rotateCA(set, this.settings, now) : await renewServing(set, this.settings, now);
    try {
      const stored = await this.client.replace<Secret>(Secrets, { ...secret, data: { ...secret.data, ...secretData(next) } });
      return { secret: stored, recheckInMs: 0 };
    } catch (err) {
      if (!isConflict(err)) throw err;
      return { secret: await this.client.get<Secret>(Secrets, this.secretRef.name, this.secretRef.namespace), recheckInMs: 0 };
    }
  }
}
