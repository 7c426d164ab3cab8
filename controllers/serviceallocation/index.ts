// ClusterIP and NodePort allocation, wired into a Manager:
// - on every replica: the claims and IPAddress caches and the HTTPS admission webhook (mutate + validate);
// - on the leader: certificate renewal and the webhook configurations (caBundle), the claim controller
//   (bind, release, free leaks) and the Service-side repair (adopt, report duplicates and out-of-range values).
import { claimName } from '../../allocators/service/claim-names.js';
import type { AllocationConfig } from '../../allocators/service/service-allocation.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { Backoff, sleep } from '../runtime/backoff.js';
import { isNotFound, type KubeClient } from '../runtime/client.js';
import type { Informer } from '../runtime/informer.js';
import type { Manager } from '../runtime/manager.js';
import { IPAddresses, MutatingWebhookConfigurations, Secrets, Services, ValidatingWebhookConfigurations, type ResourceType } from '../../api/resources.js';
import type { KubeObject, Service } from '../../api/wire.js';
import { mutateService, validateService, type AdmissionDeps } from './admission-handlers.js';
import { certificateSetOf, ensureCertificateSecret, renewCertificateSecret, type Secret } from '../runtime/webhook/certificate-secret.js';
import type { CertificateSettings } from '../runtime/webhook/certificates.js';
import { claimController, claimIndexers } from './claim-controller.js';
import type { ClaimTimings } from './claim-reconciler.js';
import type { TakenValues } from './claim-store.js';
import { registerRangeMetrics } from './metrics.js';
import { repairController } from './repair-controller.js';
import { MUTATE_PATH, VALIDATE_PATH, applyWebhookConfigurations, type WebhookSettings } from '../runtime/webhook/configuration.js';
import { WebhookServer } from '../runtime/webhook/server.js';

export interface ServiceAllocationOptions {
  readonly allocation: AllocationConfig;
  readonly timings: ClaimTimings;
  readonly webhook: WebhookSettings & {
    /** host:port the HTTPS server listens on. */
    readonly bindAddress: string;
    /** Secret (in `namespace`) holding the CA bundle and the serving certificate. */
    readonly certificateSecret: string;
    readonly certificates: CertificateSettings;
  };
  /** Switchboard's own namespace. */
  readonly namespace: string;
  readonly stallAfterClaim?: boolean;
}

/** Configurations and certificates are checked at least this often, besides on every change. */
const RESYNC_MS = 5 * 60_000;

export async function registerServiceAllocation(manager: Manager, options: ServiceAllocationOptions): Promise<void> {
  const log = manager.log.child('service-allocation');
  const client = manager.client;
  const claims = manager.informer<ServiceClaim>(ServiceClaims, { indexers: claimIndexers });
  // Picks skip addresses the API server's own allocator holds (Services from before us, opted-out namespaces).
  // Before v1.33 it has no IPAddress objects, and an informer of an unserved resource would never sync.
  const ipAddresses = (await serves(client, IPAddresses)) ? manager.informer<KubeObject>(IPAddresses) : undefined;
  const services = manager.informer<Service>(Services);
  const secretRef = { namespace: options.namespace, name: options.webhook.certificateSecret };
  const secrets = manager.informer<Secret>(Secrets, { namespace: secretRef.namespace, fieldSelector: `metadata.name=${secretRef.name}` });
  const byName = { fieldSelector: `metadata.name=${options.webhook.configurationName}` };
  const configurations = [manager.informer<KubeObject>(MutatingWebhookConfigurations, byName), manager.informer<KubeObject>(ValidatingWebhookConfigurations, byName)];

  const taken: TakenValues = {
    isKnownTaken: (value) =>
      claims.store.get(claimName(value)) !== undefined || (value.kind === 'ip' && ipAddresses?.store.get(value.ip) !== undefined),
  };
  const deps: AdmissionDeps = { client, taken, config: options.allocation, log: log.child('webhook'), stallAfterClaim: options.stallAfterClaim };
  const server = new WebhookServer(
    { [MUTATE_PATH]: (request) => mutateService(request, deps), [VALIDATE_PATH]: (request) => validateService(request, deps) },
    log.child('webhook'),
  );
  manager.health.addReadyCheck('webhook', () => server.serving);

  manager.addRunnable({
    name: 'service-allocation-webhook',
    needsLeaderElection: false,
    run: async (signal) => {
      const secret = await untilDone(() => ensureCertificateSecret(client, secretRef, options.webhook.certificates), signal, log);
      if (!secret) return;
      server.setCertificate(certificateSetOf(secret));
      const reload = (s: Secret) => server.setCertificate(certificateSetOf(s));
      secrets.addEventHandler({ onAdd: reload, onUpdate: (_old, s) => reload(s) });
      const port = await server.listen(options.webhook.bindAddress);
      log.info('admission webhook serving', { address: options.webhook.bindAddress, port });
      await untilAborted(signal);
      await server.close();
    },
  });

  const wake = new Wakeup();
  for (const informer of [secrets, ...configurations] as Informer<KubeObject>[]) {
    informer.addEventHandler({ onAdd: () => wake.fire(), onUpdate: () => wake.fire(), onDelete: () => wake.fire() });
  }
  manager.addRunnable({
    name: 'service-allocation-webhook-configuration',
    needsLeaderElection: true,
    run: async (signal) => {
      const backoff = new Backoff(500, 30_000);
      // Registering a webhook nobody answers would fail every Service write (failurePolicy Fail).
      while (!server.serving && !signal.aborted) await sleep(100, signal);
      while (!signal.aborted) {
        let waitMs: number;
        try {
          const stored = secrets.store.get(`${secretRef.namespace}/${secretRef.name}`) ?? (await ensureCertificateSecret(client, secretRef, options.webhook.certificates));
          const renewed = await renewCertificateSecret(client, stored, options.webhook.certificates, log);
          const writes = await applyWebhookConfigurations(client, options.webhook, certificateSetOf(renewed.secret).caBundlePem);
          if (writes > 0) log.info('webhook configurations written', { name: options.webhook.configurationName, writes });
          waitMs = Math.min(renewed.recheckInMs, RESYNC_MS);
          backoff.reset();
        } catch (err) {
          waitMs = backoff.next();
          log.warn('could not reconcile webhook certificates or configurations', { error: String(err), retryInMs: waitMs });
        }
        await wake.wait(waitMs, signal);
      }
    },
  });

  manager.addController(claimController({ client, claims, services, timings: options.timings, log: log.child('claims') }));
  manager.addController(repairController({ client, claims, services, config: options.allocation, events: manager.events, log: log.child('repair') }));
  registerRangeMetrics(options.allocation, () => claims.store.list());
}

async function serves(client: KubeClient, rt: ResourceType): Promise<boolean> {
  try {
    await client.list(rt, { limit: 1 });
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Retries `fn` with backoff until it succeeds; undefined if `signal` aborts first. */
async function untilDone<T>(fn: () => Promise<T>, signal: AbortSignal, log: Manager['log']): Promise<T | undefined> {
  const backoff = new Backoff(500, 15_000);
  while (!signal.aborted) {
    try {
      return await fn();
    } catch (err) {
      const wait = backoff.next();
      log.warn('webhook certificate not available yet; retrying', { error: String(err), retryInMs: wait });
      await sleep(wait, signal);
    }
  }
  return undefined;
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
}

/** A sleep that an event can cut short. */
class Wakeup {
  private pending: (() => void)[] = [];
  private fired = false;

  fire(): void {
    this.fired = true;
    for (const resolve of this.pending.splice(0)) resolve();
  }

  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.fired) {
      this.fired = false;
      return;
    }
    const early = new AbortController();
    const onAbort = () => early.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.pending.push(onAbort);
    await sleep(ms, early.signal);
    signal.removeEventListener('abort', onAbort);
    this.pending = this.pending.filter((r) => r !== onAbort);
    this.fired = false;
  }
}
