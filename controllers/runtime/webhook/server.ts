// The webhook server: the HTTPS server the API server calls, AdmissionReview in, AdmissionReview out, one
// handler per path. Bodies are bounded, every request is counted and timed, and the serving certificate can be
// swapped while running (rotation); connections already open keep theirs.
//
// With client authentication, only a caller presenting a certificate of the configured CA (and, if names are
// given, naming one of them) reaches a handler: kube-apiserver, which presents one when its admission
// configuration says so. Anyone else gets a denying AdmissionReview (401 or 403) and no handler runs, so no claim
// is ever made for a forged review. It is a denial rather than a refused TLS handshake so that a misconfigured API
// server (no certificate sent) shows why in kubectl's error, for the fail-closed allocation webhooks and for the
// pool webhook alike (whose failurePolicy Ignore would otherwise skip validation in silence).
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { constants as cryptoConstants } from 'node:crypto';
import { context, propagation, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { denyResponse, type AdmissionRequest, type AdmissionReviewRequest, type AdmissionReviewResponse } from '../../../api/admission.js';
import { forbiddenStatus, internalErrorStatus, unauthorizedStatus, type Status } from '../../../api/status.js';
import type { Logger } from '../log.js';
import { parseAddress, telemetry } from '../telemetry.js';

/** Answers the requests of one path; `T` is the resource the path is registered for in the configurations. */
export type AdmissionHandler<T = unknown> = (request: AdmissionRequest<T>) => Promise<AdmissionReviewResponse> | AdmissionReviewResponse;

export interface ServingCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Who may call the webhook. */
export interface ClientAuthentication {
  /** CA bundle (PEM) a caller's client certificate must chain to. */
  readonly caPem: string;
  /** Accepted subject common names or DNS SANs of that certificate; empty: any certificate of the CA. */
  readonly allowedNames: readonly string[];
}

/** AdmissionReview bodies are one object; the API server's own limit for them is 3 MiB. */
const MAX_BODY_BYTES = 6 * 1024 * 1024;

export class WebhookServer {
  private server: Server | undefined;
  private current: ServingCertificate | undefined;
  private readonly handlers = new Map<string, AdmissionHandler>();
  private readonly requests;
  private readonly latency;

  constructor(
    private readonly log: Logger,
    private readonly clientAuthentication?: ClientAuthentication,
  ) {
    const meter = telemetry().meter;
    this.requests = meter.createCounter('switchboard_webhook_requests', { description: 'Admission requests by webhook path and outcome' });
    this.latency = meter.createHistogram('switchboard_webhook_request_duration_seconds', { description: 'Admission request latency', unit: 's' });
  }

  /** Serves `path` with `handler`; the API server sends it the objects its configurations register it for. */
  handle<T>(path: string, handler: AdmissionHandler<T>): void {
    if (this.handlers.has(path)) throw new Error(`webhook path ${path} is served twice`);
    this.handlers.set(path, handler as AdmissionHandler);
  }

  get serving(): boolean {
    return this.server?.listening ?? false;
  }

  /** Installs a certificate: the first one before listen(), later ones swap it for new connections. */
  setCertificate(certificate: ServingCertificate): void {
    if (this.current?.certPem === certificate.certPem && this.current.keyPem === certificate.keyPem) return;
    this.current = certificate;
    if (this.server) {
      this.server.setSecureContext({ ...this.tlsClientOptions(), cert: certificate.certPem, key: certificate.keyPem });
      this.log.info('serving certificate reloaded');
    }
  }

  async listen(address: string): Promise<number> {
    if (!this.current) throw new Error('no serving certificate');
    const { host, port } = parseAddress(address);
    const tls = { ...this.tlsClientOptions(), cert: this.current.certPem, key: this.current.keyPem };
    const server = createServer(tls, (req, res) => void this.traceAnswer(req, res));
    server.requestTimeout = 60_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const bound = server.address();
    return typeof bound === 'object' && bound ? bound.port : port;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /**
   * A SERVER span per admission request (HTTP semantic conventions), continuing the API server's trace when it
   * sends `traceparent`; the API calls a handler makes are its children.
   */
  private traceAnswer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const route = this.handlers.has(path) ? path : undefined;
    const parent = propagation.extract(context.active(), req.headers);
    const span = trace.getTracer('switchboard').startSpan(
      `${req.method ?? 'GET'}${route ? ` ${route}` : ''}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': req.method ?? '',
          'url.path': path,
          'url.scheme': 'https',
          ...(route ? { 'http.route': route } : {}),
          'server.port': req.socket.localPort ?? 0,
          'client.address': req.socket.remoteAddress ?? '',
          'network.protocol.version': req.httpVersion,
        },
      },
      parent,
    );
    return context.with(trace.setSpan(parent, span), async () => {
      let outcome = 'error';
      try {
        outcome = await this.answer(req, res, path);
      } finally {
        span.setAttribute('http.response.status_code', res.statusCode);
        span.setAttribute('switchboard.admission.outcome', outcome);
        if (res.statusCode >= 500) {
          span.setAttribute('error.type', String(res.statusCode));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
        span.end();
      }
    });
  }

  /** Answers one request; resolves with its outcome (allowed, patched, denied, unauthenticated or error). */
  private async answer(req: IncomingMessage, res: ServerResponse, path: string): Promise<string> {
    const started = process.hrtime.bigint();
    const handler = this.handlers.get(path);
    let outcome = 'error';
    try {
      if (!handler) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return outcome;
      }
      if (req.method !== 'POST') {
        res.writeHead(405, { 'content-type': 'text/plain' }).end('POST only\n');
        return outcome;
      }
      const body = await readBody(req);
      const review = body === undefined ? undefined : (safeParse(body) as AdmissionReviewRequest | undefined);
      const request = review?.request;
      if (!request?.uid) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('expected an AdmissionReview with a request\n');
        return outcome;
      }
      const refusal = this.callerRefusal(req.socket as TLSSocket);
      let response: AdmissionReviewResponse;
      if (refusal) {
        this.log.warn('admission request from an unauthenticated caller refused', { path, remote: req.socket.remoteAddress, reason: refusal.message });
        response = denyResponse(request.uid, refusal);
      } else {
        try {
          response = await handler(request);
        } catch (err) {
          this.log.error('admission handler failed', { path, error: String(err) });
          response = denyResponse(request.uid, internalErrorStatus(err instanceof Error ? err.message : String(err)));
        }
      }
      outcome = refusal ? 'unauthenticated' : !response.response.allowed ? 'denied' : response.response.patch ? 'patched' : 'allowed';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(response));
    } catch (err) {
      this.log.warn('bad admission request', { path, error: String(err) });
      // The body may be left unread (over the limit): the connection cannot carry another request.
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' }).end(`${String(err)}\n`);
    } finally {
      this.requests.add(1, { path, outcome });
      this.latency.record(Number(process.hrtime.bigint() - started) / 1e9, { path });
    }
    return outcome;
  }

  /**
   * The certificate request of the TLS handshake; verification is answered per request (callerRefusal). No session
   * resumption: Node reports a resumed session as authorized even when its first handshake presented no
   * certificate, so every connection makes a full handshake (kube-apiserver keeps its connections alive anyway).
   */
  private tlsClientOptions(): { requestCert?: boolean; rejectUnauthorized?: boolean; ca?: string; secureOptions?: number } {
    if (!this.clientAuthentication) return {};
    return { requestCert: true, rejectUnauthorized: false, ca: this.clientAuthentication.caPem, secureOptions: cryptoConstants.SSL_OP_NO_TICKET };
  }

  /** Why the caller on `socket` may not be served; undefined when it may (or nobody is checked). */
  private callerRefusal(socket: TLSSocket): Status | undefined {
    const auth = this.clientAuthentication;
    if (!auth) return undefined;
    const hint = 'only kube-apiserver may call this webhook, with the client certificate its admission configuration names (README: "Authenticating the API server")';
    // Both: a certificate must be there, and verified (see tlsClientOptions on why `authorized` alone is not enough).
    if (Object.keys(socket.getPeerCertificate()).length === 0) return unauthorizedStatus(`no client certificate: ${hint}`);
    if (!socket.authorized || socket.isSessionReused()) return unauthorizedStatus(`client certificate not trusted (${String(socket.authorizationError)}): ${hint}`);
    if (auth.allowedNames.length === 0) return undefined;
    const names = certificateNames(socket);
    if (names.some((n) => auth.allowedNames.includes(n))) return undefined;
    return forbiddenStatus(`client certificate names ${JSON.stringify(names)}, none of ${JSON.stringify(auth.allowedNames)}: ${hint}`);
  }
}

/** The subject common names and DNS SANs of the peer's certificate. */
function certificateNames(socket: TLSSocket): string[] {
  const peer = socket.getPeerCertificate();
  const cn = peer.subject?.CN;
  const commonNames = cn === undefined ? [] : Array.isArray(cn) ? cn : [cn];
  const dnsNames = (peer.subjectaltname ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice('DNS:'.length));
  return [...commonNames, ...dnsNames];
}

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error(`request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
