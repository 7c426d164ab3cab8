// A thin Kubernetes API client over node:https. @kubernetes/client-node loads the kubeconfig (file or
// in-cluster) and applies its credentials; this module adds what controllers need and the generated
// clients make awkward: any resource by descriptor, raw JSON objects, every patch type, streaming
// watches that can be aborted, and errors that keep the API's Status. Like client-go's rest client it
// spaces requests with a QPS/burst token bucket, retries 429 (and 5xx) answers that carry Retry-After,
// and ends a watch that has gone silent.
import { KubeConfig } from '@kubernetes/client-node';
import { context, propagation, trace, SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { AsyncLocalStorage } from 'node:async_hooks';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions as HttpRequestOptions } from 'node:https';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { createSecureContext, type ConnectionOptions, type SecureContext } from 'node:tls';
import { apiVersionOf, type ResourceType } from '../../api/resources.js';
import { sleep } from './backoff.js';
import { BucketRateLimiter } from './rate-limiter.js';
import type { KubeObject, ObjectMeta } from '../../api/wire.js';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

/** The API's `Status` object, as sent with every error. */
export interface ApiStatus {
  kind?: 'Status';
  apiVersion?: string;
  status?: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: StatusCause[]; retryAfterSeconds?: number };
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly status: ApiStatus,
    readonly verb: string,
    readonly path: string,
  ) {
    super(`${verb} ${path}: ${code} ${status.reason ?? ''} ${status.message ?? ''}`.trim());
    this.name = 'ApiError';
  }

  get reason(): string | undefined {
    return this.status.reason;
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof ApiError && e.code === 404;
export const isConflict = (e: unknown): boolean => e instanceof ApiError && e.code === 409 && e.reason === 'Conflict';
export const isAlreadyExists = (e: unknown): boolean => e instanceof ApiError && e.code === 409 && e.reason === 'AlreadyExists';
export const isGone = (e: unknown): boolean => e instanceof ApiError && e.code === 410;

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
}

export interface ObjectList<T> {
  apiVersion?: string;
  kind?: string;
  metadata: ListMeta;
  items: T[];
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
}

export interface WatchOptions extends ListOptions {
  allowWatchBookmarks?: boolean;
  timeoutSeconds?: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T> {
  type: WatchEventType;
  object: T | ApiStatus;
}

export interface WatchHandle {
  /** Resolves when the stream ends (server timeout, abort); rejects on a transport or HTTP error. */
  done: Promise<void>;
  abort(): void;
}

export type PatchType = 'merge' | 'strategic' | 'json' | 'apply';

const patchContentTypes: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface RequestObserver {
  (verb: string, resource: string, code: number, seconds: number): void;
}

/** How the client paces itself and judges a watch; every field is optional and off when absent. */
export interface ClientTuning {
  /** Client-side token bucket (client-go's QPS/Burst): requests per second once the burst is spent. */
  qps?: number;
  /** Requests allowed at once before the QPS applies. */
  burst?: number;
  /**
   * A watch that delivers no byte (event or bookmark) for this long is taken as dead and ended with an error, so
   * its informer restarts it. The API server sends a bookmark about once a minute on an idle watch.
   */
  watchIdleTimeoutMs?: number;
  /**
   * The User-Agent of every request, as client-go sends one: it names the caller in the API server's audit log
   * and in API Priority and Fairness, where replicas sharing one ServiceAccount are otherwise alike.
   */
  userAgent?: string;
}

/** Per request: a time limit on the socket's silence and a signal that aborts it (throttling included). */
export interface RequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Skips the token bucket. For lease renewals (they pace themselves and must never queue behind bulk traffic;
   * kube-controller-manager gives leader election a client of its own for the same reason) and the endpoint
   * controllers' idle probe (one read out at a time in a pause of the pod events, again after a busy answer; its
   * latency must be the API server's, not the bucket's).
   */
  unthrottled?: boolean;
  /** The answer's media type (Accept), when not the whole object as JSON: see `createForMetadata`. */
  accept?: string;
}

/**
 * The Accept of a write whose caller needs only what the API server stored in the metadata (resourceVersion,
 * generation, uid): it answers with the object's PartialObjectMetadata, not the whole object it would otherwise
 * encode for us and we would parse (about 25 KB for a slice of 100 endpoints, once per write).
 */
const METADATA_ANSWER = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

/** Whether the work that makes a request may still act; see runFenced. */
const fences = new AsyncLocalStorage<() => boolean>();

/**
 * Runs `work` so that none of its requests, however late (every callback and continuation it leaves behind counts),
 * is sent once `mayAct()` is false. The check is made on the spot, when the bytes go out on a connected socket: a
 * leader whose process wakes from a freeze runs I/O callbacks, and so reconciles, before the timer that would step
 * it down.
 */
export function runFenced<T>(mayAct: () => boolean, work: () => T): T {
  return fences.run(mayAct, work);
}

/** A request that leader-only work tried to make after its leadership ended; it was never sent. */
export class FencedError extends Error {
  constructor(verb: string, path: string) {
    super(`${verb} ${path}: not sent, leadership has ended`);
    this.name = 'FencedError';
  }
}

/**
 * A watch stream that stayed silent (no event, no bookmark) for the idle timeout, and was closed for it. Expected on
 * a resource that does not change: kube-apiserver sends a bookmark only once its watch cache has seen a resource
 * version, which for an idle type may take until etcd's next progress notification (10 minutes by default).
 */
export class WatchIdleError extends Error {
  constructor(path: string, idleMs: number) {
    super(`watch ${path}: no event or bookmark for ${idleMs} ms; taking the connection for dead`);
    this.name = 'WatchIdleError';
  }
}

/** client-go's default: a 429 or 5xx answer with Retry-After is retried this many times. */
const MAX_RETRIES = 10;

export class KubeClient {
  private agent: HttpsAgent | HttpAgent;
  /** Agents of earlier credentials: their connections (a watch, say) run on until they end; closed with the client. */
  private readonly retiredAgents: HttpsAgent[] = [];
  /** The TLS context of the kubeconfig's CA and client certificate, made again only when they change. */
  private tls: { credentials: string; context: SecureContext } | undefined;
  private readonly base: URL;
  private readonly limiter: BucketRateLimiter<void> | undefined;
  private readonly watchIdleTimeoutMs: number;
  readonly userAgent: string;
  /** Server clock − local clock, as of the last answer's Date header (whole seconds: the server was at least that far). */
  private serverClockOffsetMs: number | undefined;
  /** Called after every request, for metrics. */
  observer?: RequestObserver;
  /** Called with each request's wait for a QPS/burst token (0 when one was free), for metrics. */
  throttleObserver?: (verb: string, seconds: number) => void;

  constructor(
    readonly kubeConfig: KubeConfig,
    readonly fieldManager = 'switchboard',
    tuning: ClientTuning = {},
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.base = new URL(cluster.server);
    this.agent = this.base.protocol === 'https:' ? new HttpsAgent(AGENT_OPTIONS) : new HttpAgent(AGENT_OPTIONS);
    this.limiter = tuning.qps ? new BucketRateLimiter<void>(tuning.qps, Math.max(1, tuning.burst ?? 1)) : undefined;
    this.watchIdleTimeoutMs = tuning.watchIdleTimeoutMs ?? 0;
    this.userAgent = tuning.userAgent ?? userAgent('switchboard');
  }

  /** $KUBECONFIG or ~/.kube/config, else the in-cluster service account. */
  static fromDefault(fieldManager?: string, tuning?: ClientTuning): KubeClient {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    return new KubeClient(kc, fieldManager, tuning);
  }

  static fromFile(path: string, fieldManager?: string, tuning?: ClientTuning): KubeClient {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return new KubeClient(kc, fieldManager, tuning);
  }

  get server(): string {
    return this.base.toString();
  }

  path(rt: ResourceType, namespace?: string, name?: string, subresource?: string): string {
    const prefix = rt.group ? `/apis/${rt.group}/${rt.version}` : `/api/${rt.version}`;
    const ns = rt.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    const n = name !== undefined ? `/${encodeURIComponent(name)}` : '';
    const sub = subresource ? `/${subresource}` : '';
    return `${prefix}${ns}/${rt.plural}${n}${sub}`;
  }

  private async options(method: string, path: string, headers: Record<string, string>): Promise<HttpRequestOptions> {
    const url = new URL(path, this.base);
    const opts: HttpRequestOptions = {
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      path: `${url.pathname}${url.search}`,
      headers: { accept: 'application/json', 'user-agent': this.userAgent, ...headers },
    };
    await this.kubeConfig.applyToHTTPSOptions(opts);
    if (url.protocol === 'https:') this.reuseTlsContext(opts);
    opts.agent = this.agent;
    return opts;
  }

  /**
   * Every new connection built a TLS context from the PEM texts (parsing the key and every CA certificate): with 100
   * speakers on one machine, a third of their CPU once requests timed out and connections were made again. One
   * context per client instead, rebuilt when the kubeconfig's credentials change.
   */
  private reuseTlsContext(opts: HttpRequestOptions & Pick<ConnectionOptions, 'secureContext'>): void {
    if (opts.pfx !== undefined) return;
    const { ca, cert, key } = opts;
    const credentials = JSON.stringify([ca, cert, key].map((v) => (v === undefined ? null : Array.isArray(v) ? v.map(String) : String(v))));
    if (this.tls?.credentials !== credentials) {
      // New credentials get a new agent too: the agent resumes TLS sessions by its own key, which no longer names
      // the certificate, and a resumed session would present the old one.
      if (this.tls) {
        this.retiredAgents.push(this.agent as HttpsAgent);
        this.agent = new HttpsAgent(AGENT_OPTIONS);
      }
      this.tls = { credentials, context: createSecureContext({ ca, cert, key }) };
    }
    opts.secureContext = this.tls.context;
    delete opts.ca;
    delete opts.cert;
    delete opts.key;
  }

  /**
   * A CLIENT span for one HTTP attempt (HTTP semantic conventions: a resend is a span of its own), child of the
   * active span (the reconcile or admission request that makes the call); its context goes out as `traceparent`, so
   * an API server with tracing on continues the trace.
   */
  private startSpan(method: string, path: string, resendCount: number, headers: Record<string, string>): Span {
    const url = new URL(path, this.base);
    const template = urlTemplate(url.pathname);
    const span = tracer().startSpan(`${method} ${template}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        'http.request.method': method,
        'url.full': url.toString(),
        'url.template': template,
        'server.address': url.hostname.replace(/^\[|\]$/g, ''),
        'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
        ...(resendCount > 0 ? { 'http.request.resend_count': resendCount } : {}),
      },
    });
    propagation.inject(trace.setSpan(context.active(), span), headers);
    return span;
  }

  private send(opts: HttpRequestOptions, body: string | undefined, timeoutMs: number): Promise<IncomingMessage> {
    const mayAct = fences.getStore();
    return new Promise((resolve, reject) => {
      const secure = this.base.protocol === 'https:';
      const req = (secure ? httpsRequest : httpRequest)(opts, resolve);
      req.on('error', reject);
      if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(new Error(`${opts.method} ${opts.path}: timed out after ${timeoutMs} ms`)));
      if (!mayAct) {
        req.end(body);
        return;
      }
      // Fenced work writes its request only once the socket is connected, after a last check: a new connection
      // (TLS handshake included) takes round trips, and a process frozen meanwhile would send it on waking.
      req.once('socket', (socket) => {
        const write = () => (mayAct() ? req.end(body) : req.destroy(new FencedError(opts.method ?? '', opts.path ?? '')));
        if (socket.connecting) socket.once(secure ? 'secureConnect' : 'connect', write);
        else write();
      });
    });
  }

  /**
   * Sends a request through the token bucket and answers its response, retrying (at most MAX_RETRIES times) an
   * answer that asks for it with Retry-After: APF's 429 comes before the request is served, so a write is safe to
   * repeat too.
   */
  private async exchange(method: string, path: string, payload: string | undefined, headers: Record<string, string>, options: RequestOptions): Promise<{ res: IncomingMessage; started: bigint; span: Span }> {
    for (let retries = 0; ; retries++) {
      await this.throttle(method, options);
      const opts = await this.options(method, path, headers);
      const span = this.startSpan(method, path, retries, opts.headers as Record<string, string>);
      opts.signal = options.signal;
      const started = process.hrtime.bigint();
      let res: IncomingMessage;
      try {
        res = await this.send(opts, payload, options.timeoutMs ?? 0);
      } catch (err) {
        endSpan(span, undefined, err);
        throw err;
      }
      this.noteServerDate(res);
      const retryAfterMs = retries < MAX_RETRIES ? retryAfterOf(res) : undefined;
      if (retryAfterMs === undefined) return { res, started, span };
      this.observe(method, path, res.statusCode ?? 0, started);
      endSpan(span, res.statusCode);
      res.resume(); // drain it so the connection is reused
      await sleep(retryAfterMs, options.signal);
    }
  }

  private noteServerDate(res: IncomingMessage): void {
    const date = Date.parse(res.headers.date ?? '');
    if (Number.isFinite(date)) this.serverClockOffsetMs = date - Date.now();
  }

  /**
   * The API server's clock now, never ahead of it (its last Date header was truncated to the second), or undefined
   * before its first answer. For waits the API server times on its own clock, e.g. its request timeout.
   */
  serverNow(): number | undefined {
    return this.serverClockOffsetMs === undefined ? undefined : Date.now() + this.serverClockOffsetMs;
  }

  private observe(method: string, path: string, code: number, started: bigint): void {
    this.observer?.(method, resourceOf(path), code, Number(process.hrtime.bigint() - started) / 1e9);
  }

  /** Waits for a token of the QPS/burst bucket; throws if `signal` aborts first. */
  private async throttle(method: string, { signal, unthrottled }: RequestOptions): Promise<void> {
    signal?.throwIfAborted();
    const waitMs = unthrottled ? 0 : (this.limiter?.when() ?? 0);
    if (this.limiter && !unthrottled) this.throttleObserver?.(method, waitMs / 1000);
    if (waitMs > 0) await sleep(waitMs, signal);
    signal?.throwIfAborted();
  }

  /** One request; resolves with the parsed JSON body, throws ApiError on a non-2xx answer. */
  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json', options: RequestOptions = {}): Promise<T> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    // An explicit length: Node sends a DELETE body neither chunked nor measured, so the server would read it
    // as the start of the next request on the kept-alive connection (a stray 400 Bad Request).
    const headers: Record<string, string> = payload === undefined ? {} : { 'content-type': contentType, 'content-length': String(Buffer.byteLength(payload)) };
    if (options.accept) headers.accept = options.accept;
    const { res, started, span } = await this.exchange(method, path, payload, headers, { timeoutMs: 30_000, ...options });
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of res) chunks.push(chunk as Buffer);
    } catch (err) {
      endSpan(span, res.statusCode, err);
      throw err;
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const code = res.statusCode ?? 0;
    this.observe(method, path, code, started);
    endSpan(span, code);
    const parsed: unknown = text ? safeJson(text) : undefined;
    if (code < 200 || code > 299) {
      const status: ApiStatus = isStatus(parsed) ? parsed : { message: text.slice(0, 500), code };
      throw new ApiError(code, status, method, path);
    }
    return parsed as T;
  }

  private query(path: string, params: Record<string, string | number | boolean | undefined>): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
    const s = q.toString();
    return s ? `${path}?${s}` : path;
  }

  list<T>(rt: ResourceType, opts: ListOptions = {}, options?: RequestOptions): Promise<ObjectList<T>> {
    return this.request<ObjectList<T>>(
      'GET',
      this.query(this.path(rt, opts.namespace), {
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        limit: opts.limit,
        continue: opts.continue,
        resourceVersion: opts.resourceVersion,
      }),
      undefined,
      undefined,
      options,
    );
  }

  /** Every page of a list, with the resourceVersion of the (consistent) snapshot. */
  async listAll<T>(rt: ResourceType, opts: ListOptions = {}): Promise<ObjectList<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const page = await this.list<T>(rt, { ...opts, limit: opts.limit ?? 500, continue: cont });
      items.push(...page.items);
      cont = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (cont);
    return { metadata: { resourceVersion }, items };
  }

  /**
   * Streams watch events to `onEvent` until the server ends the stream or `abort()` is called. With a
   * watchIdleTimeoutMs, a stream silent for that long (no event, no bookmark) rejects `done`.
   */
  async watch<T>(rt: ResourceType, opts: WatchOptions, onEvent: (event: WatchEvent<T>) => void): Promise<WatchHandle> {
    const path = this.query(this.path(rt, opts.namespace), {
      watch: 1,
      resourceVersion: opts.resourceVersion,
      allowWatchBookmarks: opts.allowWatchBookmarks ?? true,
      timeoutSeconds: opts.timeoutSeconds,
      labelSelector: opts.labelSelector,
      fieldSelector: opts.fieldSelector,
    });
    const aborter = new AbortController();
    // The span of a watch ends when its answer's headers arrive: a stream lasts minutes and has no child spans.
    const done = this.exchange('GET', path, undefined, {}, { signal: aborter.signal })
      .then(({ res, span }) => {
        endSpan(span, res.statusCode);
        return this.readWatchStream(res, path, onEvent);
      })
      .catch((err: unknown) => {
        if (!aborter.signal.aborted) throw err;
      });
    return { done, abort: () => aborter.abort() };
  }

  private readWatchStream<T>(res: IncomingMessage, path: string, onEvent: (event: WatchEvent<T>) => void): Promise<void> {
    // Decode the stream, not each chunk: a chunk may end inside a multi-byte character.
    res.setEncoding('utf8');
    return new Promise<void>((resolve, reject) => {
      if ((res.statusCode ?? 0) !== 200) {
        let text = '';
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const parsed = safeJson(text);
          reject(new ApiError(res.statusCode ?? 0, isStatus(parsed) ? parsed : { message: text }, 'WATCH', path));
        });
        res.on('error', reject);
        return;
      }
      const idleMs = this.watchIdleTimeoutMs;
      let idleTimer: NodeJS.Timeout | undefined;
      const armIdleTimer = () => {
        if (idleMs <= 0) return;
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => res.destroy(new WatchIdleError(path, idleMs)), idleMs);
      };
      const settle = (err?: Error) => {
        clearTimeout(idleTimer);
        if (err) reject(err);
        else resolve();
      };
      armIdleTimer();
      let buffered = '';
      res.on('data', (chunk: string) => {
        armIdleTimer();
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          const parsed = safeJson(line);
          if (parsed && typeof parsed === 'object' && 'type' in parsed) onEvent(parsed as WatchEvent<T>);
        }
      });
      res.on('end', () => settle());
      res.on('error', settle);
      res.on('close', () => settle(res.complete ? undefined : new Error('watch stream closed before its end')));
    });
  }

  get<T>(rt: ResourceType, name: string, namespace?: string, options?: RequestOptions): Promise<T> {
    return this.request<T>('GET', this.path(rt, namespace, name), undefined, undefined, options);
  }

  /** The object or undefined when it does not exist. */
  async getOrUndefined<T>(rt: ResourceType, name: string, namespace?: string, options?: RequestOptions): Promise<T | undefined> {
    try {
      return await this.get<T>(rt, name, namespace, options);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  create<T extends KubeObject>(rt: ResourceType, obj: T, opts: { dryRun?: boolean } & RequestOptions = {}): Promise<T> {
    const ns = obj.metadata?.namespace;
    const { dryRun, ...options } = opts;
    return this.request<T>('POST', this.query(this.path(rt, ns), { fieldManager: this.fieldManager, dryRun: dryRun ? 'All' : undefined }), withTypeMeta(rt, obj), undefined, options);
  }

  /** `create`, answered with the stored object's metadata only (kind PartialObjectMetadata). */
  createForMetadata(rt: ResourceType, obj: KubeObject, opts: { dryRun?: boolean } & RequestOptions = {}): Promise<KubeObject> {
    return this.create(rt, obj, { ...opts, accept: METADATA_ANSWER });
  }

  /** Creates the object unless one of that name exists; false when it already did. */
  async createIfAbsent<T extends KubeObject>(rt: ResourceType, obj: T): Promise<boolean> {
    try {
      await this.create(rt, obj);
      return true;
    } catch (err) {
      if (isAlreadyExists(err)) return false;
      throw err;
    }
  }

  /** PUT: an update that the server refuses with 409 Conflict if metadata.resourceVersion is stale. */
  replace<T extends KubeObject>(rt: ResourceType, obj: T, subresource?: string, options?: RequestOptions): Promise<T> {
    const meta = requireMeta(obj);
    return this.request<T>('PUT', this.query(this.path(rt, meta.namespace, meta.name, subresource), { fieldManager: this.fieldManager }), withTypeMeta(rt, obj), undefined, options);
  }

  /** `replace`, answered with the stored object's metadata only (kind PartialObjectMetadata). */
  replaceForMetadata(rt: ResourceType, obj: KubeObject, subresource?: string, options?: RequestOptions): Promise<KubeObject> {
    return this.replace(rt, obj, subresource, { ...options, accept: METADATA_ANSWER });
  }

  /**
   * `replaceForMetadata` that leaves the object without managedFields, for objects a controller owns and rewrites
   * often. managedFields of one empty entry reset them (the documented way to clear them), and the API server skips
   * field tracking for an update of an object whose managedFields are then empty (apimachinery's
   * skipNonAppliedManager): that tracking took a third of its CPU for an update of a 100-endpoint slice
   * (`make bench BENCH_ARGS=update-cost`: 0.63-0.64× the CPU with the reset, e.g. 3.8-5.3 ms against 6.5-7.6).
   * Other managers' entries go too; the fields they set stay.
   */
  replaceUntracked(rt: ResourceType, obj: KubeObject): Promise<KubeObject> {
    return this.replaceForMetadata(rt, { ...obj, metadata: { ...obj.metadata, managedFields: [{}] } });
  }

  patch<T>(rt: ResourceType, name: string, patch: unknown, type: PatchType = 'merge', opts: { namespace?: string; subresource?: string; force?: boolean } = {}): Promise<T> {
    const path = this.query(this.path(rt, opts.namespace, name, opts.subresource), {
      fieldManager: this.fieldManager,
      force: type === 'apply' ? (opts.force ?? true) : undefined,
    });
    return this.request<T>('PATCH', path, patch, patchContentTypes[type]);
  }

  /** DELETE; with `uid`/`resourceVersion` preconditions the server refuses to delete a newer object. */
  async delete(rt: ResourceType, name: string, opts: { namespace?: string; uid?: string; resourceVersion?: string; propagationPolicy?: 'Background' | 'Foreground' | 'Orphan' } = {}): Promise<void> {
    const preconditions = opts.uid || opts.resourceVersion ? { uid: opts.uid, resourceVersion: opts.resourceVersion } : undefined;
    const body = preconditions || opts.propagationPolicy ? { kind: 'DeleteOptions', apiVersion: 'v1', preconditions, propagationPolicy: opts.propagationPolicy } : undefined;
    await this.request('DELETE', this.path(rt, opts.namespace, name), body);
  }

  close(): void {
    this.agent.destroy();
    for (const agent of this.retiredAgents) agent.destroy();
  }
}

const AGENT_OPTIONS = { keepAlive: true, maxSockets: 64 };

/** A User-Agent of client-go's shape, `<name> (<os>/<arch>)`; `name` may carry an identity, e.g. `switchboard-controller/replica-a`. */
export function userAgent(program: string): string {
  return `${program} (${process.platform}/${process.arch})`;
}

const tracer = () => trace.getTracer('switchboard');

/** Ends an API call's span with its status code (≥ 400 is an error for a client) or the error that ended it. */
function endSpan(span: Span, code: number | undefined, err?: unknown): void {
  if (code !== undefined) span.setAttribute('http.response.status_code', code);
  if (err !== undefined) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setAttribute('error.type', err instanceof Error ? err.name : 'Error');
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
  } else if (code !== undefined && code >= 400) {
    span.setAttribute('error.type', String(code));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/**
 * An API path with names replaced by placeholders (the span name's low-cardinality part):
 * /api/v1/namespaces/a/pods/b/status → /api/v1/namespaces/{namespace}/pods/{name}/status.
 */
export function urlTemplate(path: string): string {
  const parts = path.split('/').filter(Boolean);
  const prefix = parts[0] === 'api' ? 2 : parts[0] === 'apis' ? 3 : parts.length;
  const out = parts.slice(0, prefix);
  let rest = parts.slice(prefix);
  if (rest[0] === 'namespaces' && rest.length > 2) {
    out.push('namespaces', '{namespace}');
    rest = rest.slice(2);
  }
  if (rest.length > 0) out.push(rest[0]);
  if (rest.length > 1) out.push('{name}', ...rest.slice(2));
  return `/${out.join('/')}`;
}

function withTypeMeta<T extends KubeObject>(rt: ResourceType, obj: T): T {
  return { ...obj, apiVersion: obj.apiVersion ?? apiVersionOf(rt), kind: obj.kind ?? rt.kind };
}

function requireMeta(obj: KubeObject): ObjectMeta & { name: string } {
  const meta = obj.metadata;
  if (!meta?.name) throw new Error('object has no metadata.name');
  return meta as ObjectMeta & { name: string };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** How long a 429 or 5xx answer asks us to wait before retrying (its Retry-After seconds), if it asks. */
function retryAfterOf(res: IncomingMessage): number | undefined {
  const code = res.statusCode ?? 0;
  if (code !== 429 && code < 500) return undefined;
  const header = res.headers['retry-after'];
  if (header === undefined || !/^\d+$/.test(header.trim())) return undefined;
  return Number(header) * 1000;
}

function isStatus(v: unknown): v is ApiStatus {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'Status';
}

/** The resource segment of an API path (for metrics labels): /api/v1/namespaces/x/pods/y → pods. */
export function resourceOf(path: string): string {
  const parts = path.split('?')[0].split('/').filter(Boolean);
  const start = parts[0] === 'api' ? 2 : 3;
  const rest = parts.slice(start);
  if (rest[0] === 'namespaces' && rest.length > 2) return rest[2];
  return rest[0] ?? '';
}

/** `namespace/name`, or `name` for cluster-scoped objects: the cache and work-queue key. */
export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
