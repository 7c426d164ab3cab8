// The client's transport rules against a small local HTTP server that plays the API server: watch streams decoded
// as streams (multi-byte characters split across chunks), and a watch that goes silent is ended.
import { afterEach, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { KubeClient, type ClientTuning, type WatchEvent } from './client.js';
import { ConfigMaps } from '../../api/resources.js';
import type { KubeObject } from '../../api/wire.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A plain-HTTP fake API server on loopback and a client for it. */
async function fakeApiServer(handler: Handler, tuning: ClientTuning = {}): Promise<KubeClient> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${address.port}`, skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'nobody' }],
    currentContext: 'fake',
  });
  return new KubeClient(kc, 'test', tuning);
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function configMap(name: string, annotations: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns', resourceVersion: '1', annotations } };
}

describe('watch streams', () => {
  it('decodes multi-byte characters that chunk boundaries split', async () => {
    const texts = ['Grüße aus Köln', '東京の設定値', 'emoji 😀🚀🧪 and ĳ', 'Ελληνικά · العربية · עברית'];
    const sent = texts.map((t, i) => ({ type: 'ADDED', object: configMap(`cm-${i}`, { text: t.repeat(7) }) }));
    const body = Buffer.from(sent.map((e) => JSON.stringify(e) + '\n').join(''));
    const client = await fakeApiServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.socket?.setNoDelay(true);
      // 5-byte chunks, each flushed on its own: 2-, 3- and 4-byte characters all end up split.
      void (async () => {
        for (let at = 0; at < body.length; at += 5) {
          res.write(body.subarray(at, at + 5));
          await delay(1);
        }
        res.end();
      })();
    });
    const received: WatchEvent<KubeObject>[] = [];
    const handle = await client.watch<KubeObject>(ConfigMaps, { namespace: 'ns' }, (e) => received.push(e));
    await handle.done;
    expect(received).toEqual(sent);
    client.close();
  });

  it('ends a watch that delivers no event and no bookmark for the idle timeout', async () => {
    const client = await fakeApiServer(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '5' } } }) + '\n');
        // …then silence, with the connection left open.
      },
      { watchIdleTimeoutMs: 300 },
    );
    const events: WatchEvent<KubeObject>[] = [];
    const started = Date.now();
    const handle = await client.watch<KubeObject>(ConfigMaps, { namespace: 'ns' }, (e) => events.push(e));
    const outcome = await Promise.race([handle.done.then(() => 'ended', (err: unknown) => err), delay(3000).then(() => 'still open after 3 s')]);
    expect(outcome).toBeInstanceOf(Error);
    expect(String(outcome)).toMatch(/no event or bookmark for 300 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(events).toHaveLength(1);
    client.close();
  });
});
