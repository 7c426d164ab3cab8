// The client's transport rules against a small local HTTP server that plays the API server: watch streams decoded
// as streams (multi-byte characters split across chunks), a watch that goes silent is ended, 429 + Retry-After is
// retried a bounded number of times, and the QPS/burst token bucket spaces requests out.
import { afterEach, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ApiError, KubeClient, runFenced, userAgent, type ClientTuning, type WatchEvent } from './client.js';
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

function tooManyRequests(res: ServerResponse, retryAfterSeconds?: number): void {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (retryAfterSeconds !== undefined) headers['retry-after'] = String(retryAfterSeconds);
  res.writeHead(429, headers).end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'TooManyRequests', code: 429, message: 'too many requests' }));
}

function ok(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
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

describe('429 Too Many Requests', () => {
  it('retries after the Retry-After the server gives, for writes too', async () => {
    const arrivals: number[] = [];
    const client = await fakeApiServer((req, res) => {
      arrivals.push(Date.now());
      req.resume();
      if (arrivals.length === 1) return tooManyRequests(res, 1);
      if (arrivals.length === 2) return tooManyRequests(res, 0);
      ok(res, configMap('cm', {}));
    });
    const created = await client.create(ConfigMaps, configMap('cm', {}));
    expect(created.metadata?.name).toBe('cm');
    expect(arrivals).toHaveLength(3);
    expect(arrivals[1] - arrivals[0]).toBeGreaterThanOrEqual(950);
    client.close();
  });

  it('gives up after 10 retries, as client-go does', async () => {
    let requests = 0;
    const client = await fakeApiServer((_req, res) => {
      requests += 1;
      tooManyRequests(res, 0);
    });
    const failure = await client.get(ConfigMaps, 'cm', 'ns').catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ApiError);
    expect((failure as ApiError).code).toBe(429);
    expect(requests).toBe(11);
    client.close();
  });

  it('does not retry a 429 without Retry-After', async () => {
    let requests = 0;
    const client = await fakeApiServer((_req, res) => {
      requests += 1;
      tooManyRequests(res);
    });
    await expect(client.get(ConfigMaps, 'cm', 'ns')).rejects.toMatchObject({ code: 429 });
    expect(requests).toBe(1);
    client.close();
  });

  it('retries the start of a watch too', async () => {
    let requests = 0;
    const client = await fakeApiServer((_req, res) => {
      requests += 1;
      if (requests === 1) return tooManyRequests(res, 0);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'ADDED', object: configMap('cm', {}) }) + '\n');
    });
    const received: WatchEvent<KubeObject>[] = [];
    const handle = await client.watch<KubeObject>(ConfigMaps, { namespace: 'ns' }, (e) => received.push(e));
    await handle.done;
    expect(requests).toBe(2);
    expect(received.map((e) => e.type)).toEqual(['ADDED']);
    client.close();
  });
});

describe('client-side flow control', () => {
  it('lets a burst through at once, then spaces requests at the QPS', async () => {
    const arrivals: number[] = [];
    const client = await fakeApiServer(
      (_req, res) => {
        arrivals.push(Date.now());
        ok(res, configMap('cm', {}));
      },
      { qps: 10, burst: 3 },
    );
    const waits: number[] = [];
    client.throttleObserver = (verb, seconds) => waits.push(seconds);
    const started = Date.now();
    await Promise.all(Array.from({ length: 7 }, () => client.get(ConfigMaps, 'cm', 'ns')));
    const offsets = arrivals.map((t) => t - started).sort((a, b) => a - b);
    expect(offsets.slice(0, 3).every((ms) => ms < 90)).toBe(true);
    // Tokens 4..7 exist 100, 200, 300 and 400 ms after the start (a few ms early for timer rounding).
    offsets.slice(3).forEach((ms, i) => expect(ms).toBeGreaterThanOrEqual(100 * (i + 1) - 5));
    // The metric hears each request's wait: none for the burst, then about 0.1 s more each.
    expect(waits).toHaveLength(7);
    expect(waits.slice(0, 3)).toEqual([0, 0, 0]);
    waits.slice(3).forEach((s, i) => expect(s).toBeCloseTo(0.1 * (i + 1), 1));
    client.close();
  });

  it('lets lease renewals past the bucket', async () => {
    const arrivals: string[] = [];
    const client = await fakeApiServer(
      (req, res) => {
        arrivals.push(req.url ?? '');
        ok(res, configMap('cm', {}));
      },
      { qps: 1, burst: 1 },
    );
    await client.get(ConfigMaps, 'first', 'ns'); // spends the only token
    const throttled = client.get(ConfigMaps, 'throttled', 'ns'); // waits a second for the next
    await client.get(ConfigMaps, 'renewal', 'ns', { unthrottled: true });
    expect(arrivals.map((u) => u.split('/').pop())).toEqual(['first', 'renewal']);
    await throttled;
    client.close();
  });

  it('does not limit a client without QPS', async () => {
    let requests = 0;
    const client = await fakeApiServer((_req, res) => {
      requests += 1;
      ok(res, configMap('cm', {}));
    });
    const started = Date.now();
    await Promise.all(Array.from({ length: 50 }, () => client.get(ConfigMaps, 'cm', 'ns')));
    expect(requests).toBe(50);
    expect(Date.now() - started).toBeLessThan(2000);
    client.close();
  });
});

describe('User-Agent', () => {
  it('names the caller on every request, watches included, so the audit log tells replicas apart', async () => {
    const agents: string[] = [];
    const client = await fakeApiServer(
      (req, res) => {
        agents.push(req.headers['user-agent'] ?? '');
        if (req.url?.includes('watch=1')) res.writeHead(200, { 'content-type': 'application/json' }).end();
        else ok(res, configMap('cm', {}));
      },
      { userAgent: userAgent('switchboard-controller/replica-a') },
    );
    await client.get(ConfigMaps, 'cm', 'ns');
    await client.create(ConfigMaps, configMap('new', {}));
    await (await client.watch(ConfigMaps, { namespace: 'ns' }, () => undefined)).done;
    expect(agents).toEqual(Array(3).fill(`switchboard-controller/replica-a (${process.platform}/${process.arch})`));
    client.close();
  });

  it('says switchboard when the caller gives none', async () => {
    let agent = '';
    const client = await fakeApiServer((req, res) => {
      agent = req.headers['user-agent'] ?? '';
      ok(res, configMap('cm', {}));
    });
    await client.get(ConfigMaps, 'cm', 'ns');
    expect(agent).toBe(`switchboard (${process.platform}/${process.arch})`);
    client.close();
  });
});

describe('fenced work (a leader\'s)', () => {
  it('sends nothing once its fence closes, from continuations and timers it left behind too; other work is not fenced', async () => {
    const seen: string[] = [];
    const client = await fakeApiServer((req, res) => {
      seen.push(`${req.method} ${req.url?.split('?')[0].split('/').pop()}`);
      ok(res, configMap('cm', {}));
    });
    let open = true;
    const work = runFenced(
      () => open,
      async () => {
        await client.get(ConfigMaps, 'while-leading', 'ns');
        const fromTimer = new Promise((resolve, reject) => setTimeout(() => client.get(ConfigMaps, 'from-a-timer', 'ns').then(resolve, reject), 20));
        open = false; // e.g. the process was frozen past its renew deadline and its step-down timer has not run yet
        const write = client.create(ConfigMaps, configMap('after-the-fence', {}));
        return Promise.allSettled([write, fromTimer]);
      },
    );
    const outcomes = await work;
    expect(outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).name : o.status))).toEqual(['FencedError', 'FencedError']);
    await client.get(ConfigMaps, 'unfenced', 'ns');
    expect(seen).toEqual(['GET while-leading', 'GET unfenced']);
    client.close();
  });
});
