// The watch-delaying proxy against a stand-in HTTPS API server on loopback that wants a client certificate: a watch of
// Leases arrives `delayMs` late, chunk by chunk and in order; any other request passes at once, with the kubeconfig's
// credentials.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, request, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { createCertificateAuthority, issueCertificate } from '../controllers/runtime/pki.js';
import { WatchDelayingProxy, isLeaseWatch } from './watch-delaying-proxy.js';

const DELAY_MS = 400;
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/ns/leases';

describe('watch-delaying proxy', () => {
  let dir: string;
  let upstream: Server;
  let proxy: WatchDelayingProxy;
  let proxyKubeconfig: KubeConfig;
  /** When the stand-in server wrote each watch event. */
  const written: number[] = [];
  const clientNames: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'watch-delaying-proxy-'));
    const ca = await createCertificateAuthority('stand-in-ca');
    const serving = await issueCertificate(ca, { commonName: 'stand-in', ipAddresses: ['127.0.0.1'], usage: 'server' });
    const admin = await issueCertificate(ca, { commonName: 'stand-in-admin', usage: 'client' });
    upstream = createServer({ cert: serving.certPem, key: serving.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      clientNames.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
      const url = new URL(req.url ?? '/', 'https://127.0.0.1');
      if (url.searchParams.get('watch') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json' });
        let n = 0;
        const tick = setInterval(() => {
          written.push(Date.now());
          res.write(`{"type":"MODIFIED","object":{"n":${n}}}\n`);
          if (++n === 3) {
            clearInterval(tick);
            res.end();
          }
        }, 100);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: url.pathname }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', () => resolve()));
    const port = (upstream.address() as { port: number }).port;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': b64(ca.certPem) } }],
        users: [{ name: 'u', user: { 'client-certificate-data': b64(admin.certPem), 'client-key-data': b64(admin.keyPem) } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    proxy = await WatchDelayingProxy.start(kubeconfig, { delayMs: DELAY_MS, delays: isLeaseWatch });
    await proxy.writeKubeconfig(join(dir, 'through-proxy'));
    proxyKubeconfig = new KubeConfig();
    proxyKubeconfig.loadFromFile(join(dir, 'through-proxy'));
  });

  afterAll(async () => {
    await proxy?.close();
    upstream?.closeAllConnections();
    await new Promise<void>((resolve) => upstream?.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  /** GETs `path` through the proxy, trusting only the CA of the kubeconfig it wrote; each chunk with when it came. */
  const get = (path: string): Promise<{ status: number; chunks: { at: number; text: string }[] }> =>
    new Promise((resolve, reject) => {
      const cluster = proxyKubeconfig.getCurrentCluster()!;
      const req = request(new URL(path, cluster.server), { ca: Buffer.from(cluster.caData!, 'base64').toString() }, (res) => {
        const chunks: { at: number; text: string }[] = [];
        res.on('data', (c: Buffer) => chunks.push({ at: Date.now(), text: c.toString() }));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, chunks }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });

  it('passes other requests at once, with the kubeconfig’s client certificate', async () => {
    const started = Date.now();
    const r = await get(`${LEASES}/speaker-n1`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.chunks.map((c) => c.text).join(''))).toEqual({ path: `${LEASES}/speaker-n1` });
    expect(Date.now() - started).toBeLessThan(DELAY_MS);
    expect(clientNames.at(-1)).toBe('stand-in-admin');
    expect(proxy.delayedChunks).toBe(0);
  });

  it('delays each event of a watch of Leases by the delay, in order', async () => {
    written.length = 0;
    const r = await get(`${LEASES}?watch=true&resourceVersion=1`);
    const events = r.chunks
      .map((c) => c.text)
      .join('')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { object: { n: number } }).object.n);
    expect(events).toEqual([0, 1, 2]);
    expect(written).toHaveLength(3);
    // Each event arrived no sooner than the delay after it was written (chunks may merge: compare each event's write
    // with the chunk that brought it, the first chunk at the latest).
    expect(r.chunks[0].at - written[0]).toBeGreaterThanOrEqual(DELAY_MS - 5);
    expect(r.chunks.at(-1)!.at - written[2]).toBeGreaterThanOrEqual(DELAY_MS - 5);
    expect(proxy.delayedChunks).toBeGreaterThanOrEqual(3);
  });
});
