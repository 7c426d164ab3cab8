// The secured metrics port on a real API server: /metrics over HTTPS answers 401 without a token or with one the API
// server does not know, 403 to a ServiceAccount without `get /metrics`, and Prometheus text to one bound to
// config/rbac's switchboard-metrics-reader; /healthz and /readyz answer anyone (the kubelet's probes carry no token).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeClient } from './client.js';
import { silentLogger } from './log.js';
import { Manager } from './manager.js';
import { createCertificateAuthority, issueCertificate } from './pki.js';
import { createNamespace, deleteNamespace, eventually, randomSuffix, testClient } from '../../e2e/jest/cluster.js';
import { readYamlFile } from '../../e2e/deploy/manifests.js';

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function get(port: number, path: string, options: { token?: string; ca?: string; client?: { certPem: string; keyPem: string } } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
        // The self-signed certificate is trusted by no one (Prometheus: insecureSkipVerify); a given one is verified.
        ...(options.ca ? { ca: options.ca, servername: 'localhost' } : { rejectUnauthorized: false }),
        ...(options.client ? { cert: options.client.certPem, key: options.client.keyPem } : {}),
        agent: false, // a fresh TLS session each time: a client certificate is presented per connection
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('error', reject).end();
  });
}

describe('secured /metrics (delegated authentication and authorization)', () => {
  let admin: KubeClient;
  let ns: string;
  let dir: string;
  const readerRole = `switchboard-metrics-reader-${randomSuffix()}`;
  const stop = new AbortController();
  const running: Promise<unknown>[] = [];
  const managers: Manager[] = [];
  const tokens = { reader: '', stranger: '' };
  let ca = '';

  const startManager = (certDir?: string, clientCAFile?: string): Manager => {
    const manager = new Manager({
      client: admin,
      log: silentLogger,
      component: 'switchboard-test',
      metricsAddress: '127.0.0.1:0',
      secureMetrics: { certDir, clientCAFile },
      leaderElection: { enabled: false, namespace: ns, leaseName: 'x', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2000 },
    });
    running.push(manager.run(stop.signal));
    managers.push(manager);
    return manager;
  };

  const tokenOf = async (sa: string): Promise<string> => {
    await admin.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
    const review = await admin.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3600 },
    });
    return review.status.token;
  };

  beforeAll(async () => {
    admin = testClient();
    ns = await createNamespace(admin, 'metrics');
    dir = await mkdtemp(join(tmpdir(), 'switchboard-metrics-'));
    // config/rbac's reader role, under a name of this test's own (the shared control plane may hold the real one).
    const [role] = readYamlFile('config/rbac/metrics_reader_role.yaml');
    expect(role.metadata.name).toBe('switchboard-metrics-reader');
    await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', { ...role, metadata: { name: readerRole } });
    tokens.reader = await tokenOf('reader');
    tokens.stranger = await tokenOf('stranger');
    await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: readerRole },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: readerRole },
      subjects: [
        { kind: 'ServiceAccount', name: 'reader', namespace: ns },
        { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: `${readerRole}-by-certificate` },
      ],
    });
    // A certificate of our own for --metrics-cert-dir.
    const authority = await createCertificateAuthority('metrics-test-ca');
    ca = authority.certPem;
    const serving = await issueCertificate(authority, { commonName: 'localhost', dnsNames: ['localhost'], usage: 'server' });
    await writeFile(join(dir, 'tls.crt'), serving.certPem);
    await writeFile(join(dir, 'tls.key'), serving.keyPem);
  });

  afterAll(async () => {
    stop.abort();
    await Promise.all(running);
    await admin.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${readerRole}`).catch(() => undefined);
    await admin.request('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterroles/${readerRole}`).catch(() => undefined);
    await deleteNamespace(admin, ns);
    admin.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers 401 without a valid token, 403 without the permission, and the metrics with it', async () => {
    const manager = startManager();
    await eventually(() => manager.metricsPort > 0);
    const port = manager.metricsPort;

    const anonymous = await get(port, '/metrics');
    expect({ status: anonymous.status, challenge: anonymous.headers['www-authenticate'] }).toEqual({ status: 401, challenge: 'Bearer' });
    expect((await get(port, '/metrics', { token: 'not-a-token' })).status).toBe(401);

    const stranger = await get(port, '/metrics', { token: tokens.stranger });
    expect({ status: stranger.status, body: stranger.body }).toEqual({ status: 403, body: expect.stringContaining(`system:serviceaccount:${ns}:stranger may not get /metrics`) });

    // The binding may take a moment to reach the API server's RBAC cache; a denial is cached for 10 s, so the first
    // answer is awaited with the same patience.
    const reader = await eventually(async () => {
      const r = await get(port, '/metrics', { token: tokens.reader });
      return r.status === 200 && r;
    }, 30_000, 1000);
    expect(reader.headers['content-type']).toMatch(/^text\/plain/);
    expect(reader.body).toMatch(/^# HELP switchboard_api_requests_total /m);
    expect(reader.body).toMatch(/^switchboard_api_requests_total\{.*\} \d+/m);

    // Probes need no token.
    for (const path of ['/healthz', '/readyz']) {
      const probe = await eventually(async () => {
        const r = await get(port, path);
        return r.status === 200 && r;
      });
      expect(probe.body).toMatch(/ok\n$/);
    }
  });

  it('with --metrics-client-ca-file, authorizes a client certificate of that CA as its CN, and ignores others', async () => {
    const clientAuthority = await createCertificateAuthority('metrics-client-ca');
    await writeFile(join(dir, 'client-ca.crt'), clientAuthority.certPem);
    const manager = startManager(undefined, join(dir, 'client-ca.crt'));
    await eventually(() => manager.metricsPort > 0);
    const port = manager.metricsPort;
    const reader = await issueCertificate(clientAuthority, { commonName: `${readerRole}-by-certificate`, usage: 'client' });
    const other = await issueCertificate(clientAuthority, { commonName: `${readerRole}-other`, organizations: ['some-group'], usage: 'client' });
    const foreign = await issueCertificate(await createCertificateAuthority('someone-else-ca'), { commonName: `${readerRole}-by-certificate`, usage: 'client' });

    const allowed = await eventually(async () => {
      const r = await get(port, '/metrics', { client: reader });
      return r.status === 200 && r;
    }, 30_000, 1000);
    expect(allowed.body).toMatch(/^# HELP switchboard_api_requests_total /m);
    const denied = await get(port, '/metrics', { client: other });
    expect({ status: denied.status, body: denied.body }).toEqual({ status: 403, body: expect.stringContaining(`${readerRole}-other may not get /metrics`) });
    // Another CA's certificate authenticates no one: without a token, 401; tokens still work beside it.
    expect((await get(port, '/metrics', { client: foreign })).status).toBe(401);
    expect((await get(port, '/metrics', { client: foreign, token: tokens.reader })).status).toBe(200);
    expect((await get(port, '/healthz')).status).toBe(200);
  });

  it('serves the certificate of --metrics-cert-dir, verifiable with its CA', async () => {
    const manager = startManager(dir);
    await eventually(() => manager.metricsPort > 0);
    const answer = await get(manager.metricsPort, '/metrics', { token: tokens.stranger, ca });
    expect(answer.status).toBe(403);
    await expect(get(manager.metricsPort, '/healthz', { ca: 'not a CA' })).rejects.toThrow();
  });
});
