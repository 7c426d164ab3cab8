// Both users of the runtime's webhook stack in one process, the allocation webhooks (mutate and validate Services)
// and the pool validation, on a control plane of this suite's own (the allocation webhooks fail closed for every
// Service of the cluster). Their certificates live seconds, so that within the test the serving certificates are
// renewed several times and the CAs rotated, while Service creates and pool validations keep arriving through the
// API server over real TLS: every one of them must succeed (or, for a bad pool, be denied by the webhook itself).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { ApiError, KubeClient } from '../client.js';
import { createLogger } from '../log.js';
import { Manager } from '../manager.js';
import { Namespaces, Secrets, Services } from '../../../api/resources.js';
import type { Service } from '../../../api/wire.js';
import { serviceIPRange } from '../../../allocators/service/ip-range.js';
import { nodePortRange } from '../../../allocators/service/port-range.js';
import { IPAddressPools } from '../../../crds/ipaddresspool.js';
import { LocalControlPlane } from '../../../cmd/up/controlplane/controlplane.js';
import { freePort } from '../../../cmd/up/controlplane/processes.js';
import { eventually } from '../../../e2e/jest/cluster.js';
import { ensureCRDs } from '../../loadbalancer/crds.js';
import { registerPoolValidation } from '../../loadbalancer/webhook.js';
import { API_SERVER_REQUEST_BOUND_MS } from '../../serviceallocation/claim-reconciler.js';
import { ensureServiceClaimCRD } from '../../serviceallocation/crd.js';
import { registerServiceAllocation } from '../../serviceallocation/index.js';
import { certificateSetOf, type Secret } from './certificate-manager.js';
import { splitPemBundle, type CertificateSettings } from './certificates.js';

const SYSTEM_NS = 'switchboard-system';
/** Serving certificates renewed every 4 s (a third of 6 s left), CAs rotated at 8 s of their 20 s. */
const SHORT: CertificateSettings = { servingValidityMs: 6_000, caValidityMs: 20_000, dnsNames: [], ipAddresses: ['127.0.0.1'] };
const TRAFFIC_MS = 30_000;
const CONCURRENCY = 4;

/** The certificate a TLS server on `port` presents now (a new connection, no verification). */
function presented(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (!cert) return reject(new Error('no certificate presented'));
      resolve(cert);
    });
    socket.once('error', reject);
  });
}

describe('the webhook stack rotating its certificates under load', () => {
  let cp: LocalControlPlane;
  let client: KubeClient;
  const stop = new AbortController();
  let running: Promise<unknown> | undefined;
  const ports = { allocation: 0, pools: 0 };

  beforeAll(async () => {
    cp = await new LocalControlPlane({ kubeControllerManager: false }).start();
    client = KubeClient.fromFile(cp.kubeconfig, 'switchboard-test');
    await client.create(Namespaces, { metadata: { name: SYSTEM_NS } });
    await ensureCRDs(client);
    await ensureServiceClaimCRD(client, true);
    ports.allocation = await freePort();
    ports.pools = await freePort();
    const manager = new Manager({
      client: KubeClient.fromFile(cp.kubeconfig),
      log: createLogger('rotation-test', { level: 'warn' }),
      component: 'switchboard-controller',
      leaderElection: { enabled: false, namespace: SYSTEM_NS, leaseName: '', leaseDurationMs: 0, renewDeadlineMs: 0, retryPeriodMs: 0 },
    });
    await registerServiceAllocation(manager, {
      allocation: { ipRanges: [serviceIPRange(cp.info.serviceClusterIPRange)], nodePortRange: nodePortRange(cp.info.serviceNodePortRange) },
      timings: { graceMs: 10_000, commitWindowMs: API_SERVER_REQUEST_BOUND_MS + 6_000 },
      pendingClaimLimits: { total: 0, perNamespace: 0 },
      webhook: {
        configurationName: 'switchboard-service-allocation',
        endpoint: { url: `https://127.0.0.1:${ports.allocation}` },
        timeoutSeconds: 10,
        bindAddress: `127.0.0.1:${ports.allocation}`,
        certificateSecret: 'allocation-cert',
        certificates: SHORT,
      },
      namespace: SYSTEM_NS,
    });
    registerPoolValidation(manager, {
      bindAddress: `127.0.0.1:${ports.pools}`,
      endpoint: { url: `https://127.0.0.1:${ports.pools}` },
      // Fail closed here: a call that does not get through must show as a failed request, not pass unseen.
      failurePolicy: 'Fail',
      certificates: { secret: { namespace: SYSTEM_NS, name: 'pool-cert' }, settings: SHORT },
    });
    running = manager.run(stop.signal);
    // Both answer through the API server once a Service gets its ClusterIP and a bad pool is denied.
    await eventually(async () => Boolean((await createService()).spec?.clusterIP), 60_000, 200);
    await eventually(async () => (await validatePool(0, false)) === 'denied', 60_000, 200);
  }, 120_000);

  afterAll(async () => {
    stop.abort();
    await running;
    client?.close();
    await cp?.stop();
  }, 60_000);

  const createService = () =>
    client.create<Service>(Services, { metadata: { generateName: 'rotation-', namespace: 'default' }, spec: { ports: [{ port: 80, protocol: 'TCP' }] } });

  /** A dry-run pool create: a good pool must be allowed, a bad one denied by the webhook (not failed to call). */
  async function validatePool(i: number, valid: boolean): Promise<'allowed' | 'denied'> {
    const addresses = valid ? [`10.${100 + (i % 50)}.${i % 250}.0/24`] : ['not-an-address'];
    try {
      await client.create(IPAddressPools, { metadata: { name: `rotation-${i}` }, spec: { addresses } }, { dryRun: true });
      return 'allowed';
    } catch (err) {
      if (err instanceof ApiError && err.code === 422 && err.message.includes('denied the request')) return 'denied';
      throw err;
    }
  }

  it('answers every admission request while serving certificates are renewed and CAs rotated', async () => {
    const deadline = Date.now() + TRAFFIC_MS;
    const failures: string[] = [];
    const counts = { services: 0, pools: 0 };
    const presentedBy = { allocation: new Map<string, X509Certificate>(), pools: new Map<string, X509Certificate>() };
    const cas = { allocation: new Set<string>(), pools: new Set<string>() };

    const watch = async () => {
      while (Date.now() < deadline) {
        for (const which of ['allocation', 'pools'] as const) {
          const cert = await presented(ports[which]);
          presentedBy[which].set(cert.fingerprint256, cert);
          const secret = await client.get<Secret>(Secrets, which === 'allocation' ? 'allocation-cert' : 'pool-cert', SYSTEM_NS);
          for (const ca of splitPemBundle(certificateSetOf(secret).caBundlePem)) cas[which].add(ca);
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    };
    const traffic = async (worker: number) => {
      for (let i = worker; Date.now() < deadline; i += CONCURRENCY) {
        try {
          const service = await createService();
          if (!service.spec?.clusterIP) failures.push(`Service ${service.metadata?.name}: no ClusterIP`);
          counts.services++;
          const valid = i % 2 === 0;
          const outcome = await validatePool(i, valid);
          if (outcome !== (valid ? 'allowed' : 'denied')) failures.push(`pool ${i}: ${outcome}`);
          counts.pools++;
        } catch (err) {
          failures.push(`request ${i}: ${String(err)}`);
        }
      }
    };
    await Promise.all([watch(), ...Array.from({ length: CONCURRENCY }, (_, worker) => traffic(worker))]);

    expect({ failed: failures.length, first: failures.slice(0, 5) }).toEqual({ failed: 0, first: [] });
    expect(counts.services).toBeGreaterThan(50);
    expect(counts.pools).toBeGreaterThan(50);
    // It did rotate while serving: new certificates on new connections, signed by more than one CA.
    for (const which of ['allocation', 'pools'] as const) {
      const authorities = [...cas[which]].map((pem) => new X509Certificate(pem));
      const signers = new Set([...presentedBy[which].values()].map((cert) => authorities.findIndex((ca) => cert.verify(ca.publicKey))));
      expect({ which, certificates: presentedBy[which].size >= 5, issuers: signers.size >= 2 && !signers.has(-1), cas: cas[which].size >= 3 }).toEqual({
        which,
        certificates: true,
        issuers: true,
        cas: true,
      });
    }
  });
});
