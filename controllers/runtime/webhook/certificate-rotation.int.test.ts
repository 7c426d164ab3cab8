// Two replicas' certificate managers sharing one Secret and one pair of webhook configurations on a real API server.
// A seeded random walk interleaves their steps as the leader loop takes them (publish the Secret's bundle into the
// configurations, then renew), their reloads of the Secret (what each replica serves) and the passing of time
// (simulated: certificates are issued at the managers' clock), and after every step checks the invariant: every
// configuration trusts the CA of every unexpired certificate a replica serves. Taking out either safeguard (the
// certificate manager's wait for publication, the configuration writer's merge of stored trust) fails it, with this
// seed and with 7 and 42.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import type { KubeClient } from '../client.js';
import { silentLogger } from '../log.js';
import { MutatingWebhookConfigurations, Secrets, ValidatingWebhookConfigurations } from '../../../api/resources.js';
import { createNamespace, deleteNamespace, randomSuffix, testClient } from '../../../e2e/jest/cluster.js';
import { prng } from '../../../testing/prng.js';
import { CertificateManager, certificateSetOf, type Secret } from './certificate-manager.js';
import { type CertificateSettings, signedByBundle, splitPemBundle } from './certificates.js';
import { applyWebhookConfigurations, clientConfig, deleteWebhookConfigurations, type ConfigurationsFor, type WebhookConfiguration } from './configuration.js';

const HOUR = 3600_000;
const SEED = Number(process.env.ROTATION_SEED ?? 20261130);
const STEPS = Number(process.env.ROTATION_STEPS ?? 600);
const settings: CertificateSettings = { servingValidityMs: 24 * HOUR, caValidityMs: 72 * HOUR, dnsNames: ['hook.rotation.svc'], ipAddresses: [] };

interface Replica {
  readonly name: string;
  readonly certificates: CertificateManager;
  /** The Secret as this replica last read or wrote it. */
  view: Secret;
  /** The bundle this replica last published into the configurations. */
  published: string;
  /** The serving certificate it serves (loaded from its view at its last reload). */
  served: string;
}

describe('webhook certificates shared by two replicas', () => {
  let client: KubeClient;
  let ns: string;
  const suffix = randomSuffix();
  const configurationName = `rotation-test-${suffix}`;
  let now = Date.now();

  /** Configurations on a label no namespace carries, failing open: they never touch another test's requests. */
  const configurations: ConfigurationsFor = (caBundle) => {
    const webhook = (path: string) => ({
      name: 'rotation.test.switchboard.dev',
      clientConfig: clientConfig({ url: 'https://127.0.0.1:9' }, path, caBundle),
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['configmaps'], scope: 'Namespaced' }],
      failurePolicy: 'Ignore',
      matchPolicy: 'Equivalent',
      namespaceSelector: { matchLabels: { 'switchboard.dev/rotation-test': suffix } },
      objectSelector: {},
      sideEffects: 'None',
      timeoutSeconds: 1,
      admissionReviewVersions: ['v1'],
    });
    const metadata = { name: configurationName };
    return [
      { rt: MutatingWebhookConfigurations, object: { metadata, webhooks: [{ ...webhook('/mutate'), reinvocationPolicy: 'Never' }] } },
      { rt: ValidatingWebhookConfigurations, object: { metadata, webhooks: [webhook('/validate')] } },
    ];
  };

  /** Every (replica, configuration) whose caBundle lacks the CA of a certificate the replica serves unexpired. */
  async function violations(replicas: readonly Replica[]): Promise<string[]> {
    const found: string[] = [];
    for (const rt of [MutatingWebhookConfigurations, ValidatingWebhookConfigurations]) {
      const stored = await client.getOrUndefined<WebhookConfiguration>(rt, configurationName);
      for (const webhook of stored?.webhooks ?? []) {
        const bundle = Buffer.from(webhook.clientConfig.caBundle, 'base64').toString('utf8');
        for (const replica of replicas) {
          const expired = Date.parse(new X509Certificate(replica.served).validTo) <= now;
          if (!expired && !signedByBundle(replica.served, bundle)) found.push(`${rt.kind} does not trust the certificate ${replica.name} serves`);
        }
      }
    }
    return found;
  }

  function replica(name: string, secret = 'webhook-cert'): Replica {
    const certificates = new CertificateManager(client, { namespace: ns, name: secret }, settings, silentLogger, () => now);
    return { name, certificates, view: {}, published: '', served: '' };
  }

  async function start(replicas: readonly Replica[]): Promise<void> {
    for (const r of replicas) {
      r.view = await r.certificates.ensure();
      r.served = certificateSetOf(r.view).certPem;
    }
  }

  const bundleOf = (secret: Secret): string => certificateSetOf(secret).caBundlePem;

  beforeAll(async () => {
    client = testClient();
    ns = await createNamespace(client, 'certrot');
  });

  afterAll(async () => {
    await deleteWebhookConfigurations(client, configurationName);
    await deleteNamespace(client, ns);
    client.close();
  });

  it(`never leave the caBundle without the CA of a certificate either serves, through ${STEPS} interleaved steps (seed ${SEED})`, async () => {
    const rand = prng(SEED);
    const replicas = [replica('A'), replica('B')];
    await start(replicas);
    const seen = { cas: new Set<string>(), certificates: new Set<string>(), apart: 0 };
    const trace: string[] = [];
    for (let step = 0; step < STEPS; step++) {
      const r = replicas[Math.floor(rand() * replicas.length)];
      const roll = rand();
      if (roll < 0.15) {
        const by = Math.floor(rand() * 16 * HOUR);
        now += by;
        trace.push(`+${(by / HOUR).toFixed(1)}h`);
      } else if (roll < 0.5) {
        // The leader loop's first half: the configurations trust the bundle of the Secret as this replica sees it.
        await applyWebhookConfigurations(client, configurations, bundleOf(r.view), now);
        r.published = bundleOf(r.view);
        trace.push(`${r.name} publishes`);
      } else if (roll < 0.85) {
        // Its second half, possibly from a Secret another replica has changed since (the write is conditional).
        r.view = (await r.certificates.renew(r.view, r.published)).secret;
        trace.push(`${r.name} renews`);
      } else {
        r.view = await client.get<Secret>(Secrets, 'webhook-cert', ns);
        r.served = certificateSetOf(r.view).certPem;
        trace.push(`${r.name} reloads`);
      }
      const broken = await violations(replicas);
      if (broken.length > 0) throw new Error(`after ${trace.join(', ')}: ${broken.join('; ')}`);
      const stored = certificateSetOf(await client.get<Secret>(Secrets, 'webhook-cert', ns));
      for (const ca of splitPemBundle(stored.caBundlePem)) seen.cas.add(ca);
      seen.certificates.add(stored.certPem);
      if (replicas[0].served !== replicas[1].served) seen.apart++;
    }
    // The walk went through what it is meant to test: CA rotations, renewals, and replicas serving different certificates.
    expect(seen.cas.size).toBeGreaterThanOrEqual(4);
    expect(seen.certificates.size).toBeGreaterThanOrEqual(8);
    expect(seen.apart).toBeGreaterThan(STEPS / 10);
  });

  it('and the check does catch a caBundle swapped under a replica (what a registration that replaces the bundle did)', async () => {
    const replicas = [replica('C', 'webhook-cert-c')];
    await start(replicas);
    await applyWebhookConfigurations(client, configurations, bundleOf(replicas[0].view), now);
    expect(await violations(replicas)).toEqual([]);
    // A new CA written over the bundle instead of beside it, as a writer without the merge would.
    const other = new CertificateManager(client, { namespace: ns, name: 'other-cert' }, settings, silentLogger, () => now);
    const foreign = bundleOf(await other.ensure());
    for (const { rt, object } of configurations(foreign)) {
      const stored = await client.get<WebhookConfiguration>(rt, configurationName);
      await client.replace(rt, { ...object, metadata: { ...object.metadata, resourceVersion: stored.metadata?.resourceVersion } });
    }
    expect(await violations(replicas)).toEqual([
      'MutatingWebhookConfiguration does not trust the certificate C serves',
      'ValidatingWebhookConfiguration does not trust the certificate C serves',
    ]);
    // The writer puts the replica's CA back beside the foreign one instead of choosing.
    await applyWebhookConfigurations(client, configurations, bundleOf(replicas[0].view), now);
    expect(await violations(replicas)).toEqual([]);
  });
});
