// The webhook server over real TLS on loopback (no API server needed): routing by path, bounded bodies, a handler
// failure answered as a 500 Status, and a certificate swapped while running.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Agent, request } from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { allowResponse } from '../../../api/admission.js';
import { silentLogger } from '../log.js';
import { createCertificateAuthority, issueCertificate, type KeyPairPem } from '../pki.js';
import { WebhookServer } from './server.js';

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly fingerprint: string;
}

describe('the webhook server', () => {
  const server = new WebhookServer(silentLogger);
  let port = 0;
  let caPem = '';
  const certificates: KeyPairPem[] = [];
  const presentedOn = new WeakMap<TLSSocket, string>();

  /** A request on a new connection, or on `agent`'s kept-alive one. */
  function post(path: string, body: string | Buffer, agent?: Agent, method = 'POST'): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, ca: caPem, agent: agent ?? false, headers: { 'content-type': 'application/json' } }, (res) => {
        // A kept-alive socket shows its peer's certificate only on its first response: remember it per socket.
        const socket = res.socket as TLSSocket;
        const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? presentedOn.get(socket) ?? '';
        presentedOn.set(socket, fingerprint);
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, fingerprint }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  const review = (uid: string, object: unknown = {}) => JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid, object } });

  beforeAll(async () => {
    const ca = await createCertificateAuthority('test-webhook-ca', 1);
    caPem = ca.certPem;
    for (let i = 0; i < 2; i++) certificates.push(await issueCertificate(ca, { commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'], usage: 'server', validDays: 1 }));
    server.handle<{ name?: string }>('/echo', (r) => allowResponse(r.uid, [], [`saw ${r.object?.name ?? ''}`]));
    server.handle('/broken', () => Promise.reject(new Error('store unavailable')));
    server.setCertificate(certificates[0]);
    port = await server.listen('127.0.0.1:0');
  });

  afterAll(() => server.close());

  it('routes AdmissionReviews by path and answers what is not one', async () => {
    const echo = await post('/echo', review('u1', { name: 'web' }));
    expect({ status: echo.status, review: JSON.parse(echo.body) as unknown }).toEqual({
      status: 200,
      review: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u1', allowed: true, warnings: ['saw web'] } },
    });
    expect((await post('/elsewhere', review('u2'))).status).toBe(404);
    expect((await post('/echo', '', undefined, 'GET')).status).toBe(405);
    expect((await post('/echo', 'not json')).status).toBe(400);
    expect((await post('/echo', JSON.stringify({ kind: 'AdmissionReview' }))).status).toBe(400);
    expect(() => server.handle('/echo', () => allowResponse('x'))).toThrow('webhook path /echo is served twice');
  });

  it('refuses a body over its limit and denies with a 500 Status when a handler fails', async () => {
    // It stops reading at the limit: the client sees the answer, or a reset if it was still sending; the connection
    // is closed, so a client that keeps connections alive is not handed a half-read one.
    const kept = new Agent({ keepAlive: true, maxSockets: 1 });
    const huge = await post('/echo', Buffer.alloc(7 * 1024 * 1024, 0x20), kept).then(
      (answer) => answer.body,
      (err: NodeJS.ErrnoException) => err.code,
    );
    expect(['Error: request body larger than 6291456 bytes\n', 'ECONNRESET', 'EPIPE']).toContain(huge);
    expect((await post('/echo', review('u7'), kept)).status).toBe(200);
    kept.destroy();
    const broken = JSON.parse((await post('/broken', review('u3'))).body) as { response: unknown };
    expect(broken.response).toEqual({
      uid: 'u3',
      allowed: false,
      status: { status: 'Failure', message: 'Internal error occurred: store unavailable', reason: 'InternalError', details: { causes: [{ message: 'store unavailable' }] }, code: 500 },
    });
  });

  it('presents a new certificate on new connections once swapped; an open connection keeps working', async () => {
    const fingerprints = certificates.map((c) => new X509Certificate(c.certPem).fingerprint256);
    const kept = new Agent({ keepAlive: true, maxSockets: 1 });
    expect((await post('/echo', review('u4'), kept)).fingerprint).toBe(fingerprints[0]);
    server.setCertificate(certificates[1]);
    expect((await post('/echo', review('u5'))).fingerprint).toBe(fingerprints[1]);
    const again = await post('/echo', review('u6'), kept);
    expect({ status: again.status, fingerprint: again.fingerprint }).toEqual({ status: 200, fingerprint: fingerprints[0] });
    kept.destroy();
  });
});

describe('the webhook server with client authentication', () => {
  let port = 0;
  let caPem = '';
  let server: WebhookServer;
  const clients: Record<'apiServer' | 'otherName' | 'foreign', KeyPairPem> = {} as Record<'apiServer' | 'otherName' | 'foreign', KeyPairPem>;
  const serving: KeyPairPem[] = [];

  /** The answer's HTTP status, and the denial's code if it denied. */
  function call(client: KeyPairPem | undefined): Promise<{ status: number; allowed?: boolean; code?: number }> {
    return new Promise((resolve, reject) => {
      // A new agent per call: no connection or TLS session of an earlier caller is reused.
      const agent = new Agent({ ca: caPem, ...(client ? { cert: client.certPem, key: client.keyPem } : {}) });
      const req = request({ host: '127.0.0.1', port, path: '/echo', method: 'POST', agent }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => {
          const review = JSON.parse(text) as { response: { allowed: boolean; status?: { code: number } } };
          resolve({ status: res.statusCode ?? 0, allowed: review.response.allowed, code: review.response.status?.code });
        });
      });
      req.on('error', reject);
      req.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', object: {} } }));
    });
  }

  beforeAll(async () => {
    const ca = await createCertificateAuthority('test-cluster-ca', 1);
    const foreignCA = await createCertificateAuthority('forger-ca', 1);
    caPem = ca.certPem;
    clients.apiServer = await issueCertificate(ca, { commonName: 'kube-apiserver-webhook-client', usage: 'client', validDays: 1 });
    clients.otherName = await issueCertificate(ca, { commonName: 'system:node:worker', usage: 'client', validDays: 1 });
    clients.foreign = await issueCertificate(foreignCA, { commonName: 'kube-apiserver-webhook-client', usage: 'client', validDays: 1 });
    for (let i = 0; i < 2; i++) serving.push(await issueCertificate(ca, { commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'], usage: 'server', validDays: 1 }));
    server = new WebhookServer(silentLogger, { caPem, allowedNames: ['kube-apiserver-webhook-client'] });
    server.handle('/echo', (r) => allowResponse(r.uid));
    server.setCertificate(serving[0]);
    port = await server.listen('127.0.0.1:0');
  });

  afterAll(() => server.close());

  it('serves the API server\'s certificate only, before and after a swap of its own certificate', async () => {
    for (const round of [0, 1]) {
      if (round === 1) server.setCertificate(serving[1]);
      expect({ round, answer: await call(clients.apiServer) }).toEqual({ round, answer: { status: 200, allowed: true } });
      expect({ round, answer: await call(undefined) }).toEqual({ round, answer: { status: 200, allowed: false, code: 401 } });
      expect({ round, answer: await call(clients.foreign) }).toEqual({ round, answer: { status: 200, allowed: false, code: 401 } });
      expect({ round, answer: await call(clients.otherName) }).toEqual({ round, answer: { status: 200, allowed: false, code: 403 } });
    }
  });
});
