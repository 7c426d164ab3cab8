// The webhook server: the HTTPS server the API server calls, AdmissionReview in, AdmissionReview out, one
// handler per path. Bodies are bounded, every request is counted and timed, and the serving certificate can be
// swapped while running (rotation); connections already open keep theirs.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { denyResponse, type AdmissionRequest, type AdmissionReviewRequest, type AdmissionReviewResponse } from '../../../api/admission.js';
import { internalErrorStatus } from '../../../api/status.js';
import type { Logger } from '../log.js';
import { parseAddress, telemetry } from '../telemetry.js';

/** Answers the requests of one path; `T` is the resource the path is registered for in the configurations. */
export type AdmissionHandler<T = unknown> = (request: AdmissionRequest<T>) => Promise<AdmissionReviewResponse> | AdmissionReviewResponse;

export interface ServingCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

/** AdmissionReview bodies are one object; the API server's own limit for them is 3 MiB. */
const MAX_BODY_BYTES = 6 * 1024 * 1024;

export class WebhookServer {
  private server: Server | undefined;
  private current: ServingCertificate | undefined;
  private readonly handlers = new Map<string, AdmissionHandler>();
  private readonly requests;
  private readonly latency;

  constructor(private readonly log: Logger) {
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
      this.server.setSecureContext({ cert: certificate.certPem, key: certificate.keyPem });
      this.log.info('serving certificate reloaded');
    }
  }

  async listen(address: string): Promise<number> {
    if (!this.current) throw new Error('no serving certificate');
    const { host, port } = parseAddress(address);
    const server = createServer({ cert: this.current.certPem, key: this.current.keyPem }, (req, res) => void this.answer(req, res));
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

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const path = (req.url ?? '/').split('?')[0];
    const handler = this.handlers.get(path);
    let outcome = 'error';
    try {
      if (!handler) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      if (req.method !== 'POST') return void res.writeHead(405, { 'content-type': 'text/plain' }).end('POST only\n');
      const body = await readBody(req);
      const review = body === undefined ? undefined : (safeParse(body) as AdmissionReviewRequest | undefined);
      const request = review?.request;
      if (!request?.uid) return void res.writeHead(400, { 'content-type': 'text/plain' }).end('expected an AdmissionReview with a request\n');
      let response: AdmissionReviewResponse;
      try {
        response = await handler(request);
      } catch (err) {
        this.log.error('admission handler failed', { path, error: String(err) });
        response = denyResponse(request.uid, internalErrorStatus(err instanceof Error ? err.message : String(err)));
      }
      outcome = !response.response.allowed ? 'denied' : response.response.patch ? 'patched' : 'allowed';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(response));
    } catch (err) {
      this.log.warn('bad admission request', { path, error: String(err) });
      // The body may be left unread (over the limit): the connection cannot carry another request.
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' }).end(`${String(err)}\n`);
    } finally {
      this.requests.add(1, { path, outcome });
      this.latency.record(Number(process.hrtime.bigint() - started) / 1e9, { path });
    }
  }
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
