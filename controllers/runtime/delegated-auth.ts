// Delegated authentication and authorization of the HTTP endpoints a process serves (the secured /metrics): a bearer
// token is checked with a TokenReview, its user with a SubjectAccessReview for the non-resource URL and verb `get`,
// both asked of the API server, as kube-controller-manager's secure port does (k8s.io/apiserver
// pkg/server/options/authentication.go and authorization.go: DelegatingAuthenticationOptions,
// DelegatingAuthorizationOptions) and kubebuilder's WithAuthenticationAndAuthorization filter. Answers are cached
// briefly (upstream's defaults: 10 s for tokens, 10 s for allowed and denied decisions), so a scrape every few
// seconds costs the API server two requests per token and period, not per scrape.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { KubeClient } from './client.js';
import { SubjectAccessReviews, TokenReviews } from '../../api/resources.js';
import type { KubeObject } from '../../api/wire.js';

export interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

interface TokenReview extends KubeObject {
  spec: { token: string };
  status?: { authenticated?: boolean; user?: UserInfo; error?: string };
}

interface SubjectAccessReview extends KubeObject {
  spec: { user: string; uid?: string; groups?: string[]; extra?: Record<string, string[]>; nonResourceAttributes: { path: string; verb: string } };
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

/** What to answer a request: 200 (go on), 401 (who are you?), 403 (not allowed) or 500 (could not tell). */
export interface Decision {
  code: 200 | 401 | 403 | 500;
  reason: string;
}

export interface DelegatedAuthOptions {
  /** How long a TokenReview or SubjectAccessReview answer is reused (upstream's 10 s by default). */
  cacheTtlMs?: number;
  /** At most this many cached answers of each kind (expired ones are dropped first). */
  cacheSize?: number;
  now?: () => number;
}

/** A small TTL cache: entries expire after `ttlMs`, and when full the oldest entry goes. */
class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  constructor(
    private readonly ttlMs: number,
    private readonly size: number,
    private readonly now: () => number,
  ) {}

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires > this.now()) return entry.value;
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: V): void {
    this.entries.delete(key);
    if (this.entries.size >= this.size) {
      for (const [k, e] of this.entries) if (e.expires <= this.now()) this.entries.delete(k);
      if (this.entries.size >= this.size) this.entries.delete(this.entries.keys().next().value as string);
    }
    this.entries.set(key, { value, expires: this.now() + this.ttlMs });
  }
}

export class DelegatedAuth {
  /** sha256(token) → the user, or null when the API server does not know the token. */
  private readonly tokens: TtlCache<UserInfo | null>;
  private readonly decisions: TtlCache<Decision>;

  constructor(
    private readonly client: KubeClient,
    options: DelegatedAuthOptions = {},
  ) {
    const ttl = options.cacheTtlMs ?? 10_000;
    const size = options.cacheSize ?? 1024;
    const now = options.now ?? Date.now;
    this.tokens = new TtlCache(ttl, size, now);
    this.decisions = new TtlCache(ttl, size, now);
  }

  /**
   * Authenticates the request (a client certificate the configured CA signed, else its `Authorization: Bearer`
   * token, upstream's order), then asks whether its user may `get` `path`.
   */
  async checkRequest(req: IncomingMessage, path: string): Promise<Decision> {
    const user = certificateUser(req);
    if (!user) return this.check(req.headers.authorization, path);
    try {
      return await this.authorize(user, path);
    } catch (err) {
      return { code: 500, reason: `subject access review failed: ${String(err)}` };
    }
  }

  /** Authenticates an `Authorization: Bearer` header's token, then asks whether its user may `get` `path`. */
  async check(authorization: string | undefined, path: string): Promise<Decision> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (!token) return { code: 401, reason: 'no bearer token' };
    let user: UserInfo | null;
    try {
      user = await this.authenticate(token);
    } catch (err) {
      // Upstream's delegating authenticator answers 401 when the TokenReview itself fails; nothing is cached.
      return { code: 401, reason: `token review failed: ${String(err)}` };
    }
    if (!user) return { code: 401, reason: 'invalid bearer token' };
    try {
      return await this.authorize(user, path);
    } catch (err) {
      return { code: 500, reason: `subject access review failed: ${String(err)}` };
    }
  }

  private async authenticate(token: string): Promise<UserInfo | null> {
    const key = createHash('sha256').update(token).digest('hex');
    const cached = this.tokens.get(key);
    if (cached !== undefined) return cached;
    const review = await this.client.create<TokenReview>(TokenReviews, { spec: { token } });
    const user = review.status?.authenticated && review.status.user?.username ? review.status.user : null;
    this.tokens.set(key, user);
    return user;
  }

  private async authorize(user: UserInfo, path: string): Promise<Decision> {
    const key = JSON.stringify([user.username, user.uid ?? '', [...(user.groups ?? [])].sort(), user.extra ?? {}, path]);
    const cached = this.decisions.get(key);
    if (cached) return cached;
    const review = await this.client.create<SubjectAccessReview>(SubjectAccessReviews, {
      spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb: 'get' } },
    });
    const decision: Decision = review.status?.allowed
      ? { code: 200, reason: 'allowed' }
      : { code: 403, reason: `${user.username} may not get ${path}${review.status?.reason ? `: ${review.status.reason}` : ''}` };
    this.decisions.set(key, decision);
    return decision;
  }
}

/**
 * The user of a verified client certificate, as kube-apiserver's x509 authenticator reads it (CN the name, O the
 * groups; k8s.io/apiserver pkg/authentication/request/x509/x509.go CommonNameUserConversion); undefined without one.
 */
export function certificateUser(req: IncomingMessage): UserInfo | undefined {
  const socket = req.socket as TLSSocket;
  if (!socket.encrypted || !socket.authorized) return undefined;
  // Node types each field as a string, but a repeated one (several O) comes as an array.
  const subject = socket.getPeerCertificate().subject as unknown as Record<string, string | string[] | undefined> | undefined;
  const name = subject?.CN;
  if (typeof name !== 'string' || name === '') return undefined;
  const organizations = subject?.O;
  return { username: name, groups: organizations === undefined ? [] : Array.isArray(organizations) ? organizations : [organizations] };
}
