// One admission webhook wired into a Manager: the webhook server on every replica, serving the certificate its
// certificate manager keeps in a Secret (reloaded on every change of it), and on the leader the loop that
// publishes the CA bundle into the webhook configurations, renews the certificates and repairs any drift.
//
// Each step of the loop publishes before it renews: the configurations trust the Secret's whole bundle before
// the certificate manager may sign a serving certificate with its newest CA (see certificates.ts).
import { aborted } from '../abort.js';
import { Backoff, sleep } from '../backoff.js';
import type { Manager } from '../manager.js';
import type { KubeObject } from '../../../api/wire.js';
import { Secrets } from '../../../api/resources.js';
import { CertificateManager, certificateSetOf, type Secret, type SecretRef } from './certificate-manager.js';
import type { CertificateSettings } from './certificates.js';
import { applyWebhookConfigurations, type ConfigurationsFor, type WebhookEndpoint } from './configuration.js';
import { WebhookServer, type ClientAuthentication, type ServingCertificate } from './server.js';

/** A certificate made elsewhere (files): served as it is, never renewed. */
export interface ProvidedCertificate extends ServingCertificate {
  /** The CAs the API server should trust it by; empty for a publicly trusted certificate. */
  readonly caBundlePem: string;
}

export interface AdmissionWebhookOptions {
  /** Names the runnables, the log and the ready check. */
  readonly name: string;
  /** host:port the webhook server listens on. */
  readonly bindAddress: string;
  readonly certificates: { readonly secret: SecretRef; readonly settings: CertificateSettings } | { readonly provided: ProvidedCertificate };
  readonly configurations: ConfigurationsFor;
  /** Serve only callers with such a client certificate (kube-apiserver); none: anyone who can connect. */
  readonly clientAuthentication?: ClientAuthentication;
}

/** The names the API server verifies a serving certificate against when it calls `endpoint` (none: loopback). */
export function certificateHosts(endpoint: WebhookEndpoint | undefined): Pick<CertificateSettings, 'dnsNames' | 'ipAddresses'> {
  if (!endpoint) return { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };
  if ('url' in endpoint) {
    const host = new URL(endpoint.url).hostname.replace(/^\[|\]$/g, '');
    return /^[\d.]+$|:/.test(host) ? { dnsNames: [], ipAddresses: [host] } : { dnsNames: [host], ipAddresses: [] };
  }
  const { name, namespace } = endpoint.service;
  return { dnsNames: [`${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`, `${name}.${namespace}`, name], ipAddresses: [] };
}

/** Configurations and certificates are checked at least this often, besides on every change. */
const RESYNC_MS = 5 * 60_000;

/** Registers the webhook's runnables; the caller adds its paths to the returned server before the manager starts. */
export function registerAdmissionWebhook(manager: Manager, options: AdmissionWebhookOptions): WebhookServer {
  const log = manager.log.child(`${options.name}-webhook`);
  const server = new WebhookServer(log, options.clientAuthentication);
  if (!options.clientAuthentication) log.warn('admission webhook serves any caller: give it a client CA to serve only kube-apiserver');
  manager.health.addReadyCheck(`${options.name}-webhook`, () => server.serving);
  const source = 'provided' in options.certificates ? providedSource(options.certificates.provided) : managedSource(manager, options.certificates, log);

  manager.addRunnable({
    name: `${options.name}-webhook`,
    needsLeaderElection: false,
    run: async (signal) => {
      const certificate = await retrying(() => source.serving(), signal, log);
      if (!certificate) return;
      server.setCertificate(certificate);
      source.onChange((next) => server.setCertificate(next));
      const port = await server.listen(options.bindAddress);
      log.info('admission webhook serving', { address: options.bindAddress, port });
      await aborted(signal);
      await server.close();
    },
  });

  const wake = new Wakeup();
  const names = options.configurations('').map(({ rt, object }) => ({ rt, name: object.metadata?.name ?? '' }));
  source.onChange(() => wake.fire());
  for (const { rt, name } of names) {
    manager.informer<KubeObject>(rt, { fieldSelector: `metadata.name=${name}` }).addEventHandler({ onAdd: () => wake.fire(), onUpdate: () => wake.fire(), onDelete: () => wake.fire() });
  }

  manager.addRunnable({
    name: `${options.name}-webhook-configuration`,
    needsLeaderElection: true,
    run: async (signal) => {
      const backoff = new Backoff(500, 30_000);
      // A configuration nobody answers would fail (failurePolicy Fail) or skip (Ignore) every call.
      while (!server.serving && !signal.aborted) await sleep(100, signal);
      while (!signal.aborted) {
        let waitMs: number;
        try {
          const bundle = await source.caBundle();
          const writes = await applyWebhookConfigurations(manager.client, options.configurations, bundle);
          if (writes > 0) log.info('webhook configurations written', { names: names.map((n) => n.name), writes });
          waitMs = Math.min(await source.renew(bundle), RESYNC_MS);
          backoff.reset();
        } catch (err) {
          waitMs = backoff.next();
          log.warn('could not reconcile webhook certificates or configurations', { error: String(err), retryInMs: waitMs });
        }
        await wake.wait(waitMs, signal);
      }
    },
  });
  return server;
}

/** Where a webhook's certificate comes from, for the server and for the configuration loop. */
interface CertificateSource {
  serving(): Promise<ServingCertificate>;
  /** Calls `listener` with every new version of the certificate. */
  onChange(listener: (certificate: ServingCertificate) => void): void;
  /** The bundle the configurations must trust now. */
  caBundle(): Promise<string>;
  /** One renewal step once `publishedBundlePem` is in every configuration; when to look again. */
  renew(publishedBundlePem: string): Promise<number>;
}

function providedSource(certificate: ProvidedCertificate): CertificateSource {
  return {
    serving: () => Promise.resolve(certificate),
    onChange: () => undefined,
    caBundle: () => Promise.resolve(certificate.caBundlePem),
    renew: () => Promise.resolve(RESYNC_MS),
  };
}

function managedSource(manager: Manager, options: { secret: SecretRef; settings: CertificateSettings }, log: Manager['log']): CertificateSource {
  const certificates = new CertificateManager(manager.client, options.secret, options.settings, log);
  const key = `${options.secret.namespace}/${options.secret.name}`;
  const secrets = manager.informer<Secret>(Secrets, { namespace: options.secret.namespace, fieldSelector: `metadata.name=${options.secret.name}` });
  // An informer lagging a write costs at most a conflict and a retry: every write is conditional.
  const current = async (): Promise<Secret> => secrets.store.get(key) ?? (await certificates.ensure());
  return {
    serving: async () => certificateSetOf(await certificates.ensure()),
    onChange: (listener) => {
      const onSecret = (secret: Secret) => listener(certificateSetOf(secret));
      secrets.addEventHandler({ onAdd: onSecret, onUpdate: (_old, secret) => onSecret(secret) });
    },
    caBundle: async () => certificateSetOf(await current()).caBundlePem,
    renew: async (publishedBundlePem) => (await certificates.renew(await current(), publishedBundlePem)).recheckInMs,
  };
}

/** Retries `fn` with backoff until it succeeds; undefined if `signal` aborts first. */
async function retrying<T>(fn: () => Promise<T>, signal: AbortSignal, log: Manager['log']): Promise<T | undefined> {
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

/** A sleep that an event can cut short. */
class Wakeup {
  private pending: (() => void)[] = [];
  private fired = false;

  fire(): void {
    this.fired = true;
    for (const resolve of this.pending.splice(0)) resolve();
  }

  async wait(ms: number, signal: AbortSignal): Promise<void> {
    // An abort that came while the loop was writing has fired its event already: waiting for it would sleep `ms`
    // (up to RESYNC_MS) and hold a graceful stop that long.
    if (signal.aborted) return;
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
