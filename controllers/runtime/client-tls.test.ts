// The client's TLS: one context per kubeconfig credentials (building one from the PEM texts for every new connection
// was a third of 100 speakers' CPU once timeouts made connections anew), built again when the credentials change.
// Against a local HTTPS server that requires a client certificate and closes every connection after one answer.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { KubeClient } from './client.js';
import { createCertificateAuthority, issueCertificate, type KeyPairPem } from './pki.js';
import { ConfigMaps } from '../../api/resources.js';

const b64 = (pem: string): string => Buffer.from(pem).toString('base64');

describe('TLS to the API server', () => {
  let server: Server;
  let port = 0;
  let caPem = '';
  let first: KeyPairPem;
  let second: KeyPairPem;
  /** The client certificate's common name of each connection, in order. */
  const connections: string[] = [];

  beforeAll(async () => {
    const ca = await createCertificateAuthority('test-ca');
    caPem = ca.certPem;
    const serving = await issueCertificate(ca, { commonName: 'apiserver', ipAddresses: ['127.0.0.1'], usage: 'server' });
    first = await issueCertificate(ca, { commonName: 'first', usage: 'client' });
    second = await issueCertificate(ca, { commonName: 'second', usage: 'client' });
    server = createServer({ key: serving.keyPem, cert: serving.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      connections.push(String(peer.subject?.CN ?? ''));
      res.writeHead(200, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'x' } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as { port: number }).port;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('builds one context for many connections, and a new one when the client certificate changes', async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caData: b64(caPem) }],
      users: [{ name: 'u', certData: b64(first.certPem), keyData: b64(first.keyPem) }],
      contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
      currentContext: 'c',
    });
    const client = new KubeClient(kc, 'test');
    const contextOf = () => (client as unknown as { tls?: { context: object } }).tls?.context;
    try {
      await client.get(ConfigMaps, 'x', 'ns');
      const context = contextOf();
      expect(context).toBeDefined();
      for (let i = 0; i < 3; i++) await client.get(ConfigMaps, 'x', 'ns');
      expect(contextOf()).toBe(context);
      // A rotated client certificate (the kubeconfig read again, say): the next connection presents the new one.
      Object.assign(kc.users[0], { certData: b64(second.certPem), keyData: b64(second.keyPem) });
      await client.get(ConfigMaps, 'x', 'ns');
      expect(contextOf()).not.toBe(context);
      expect(connections).toEqual(['first', 'first', 'first', 'first', 'second']);
    } finally {
      client.close();
    }
  });
});
