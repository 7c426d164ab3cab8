import { describe, expect, it } from '@jest/globals';
import type { KubeClient } from './client.js';
import { DelegatedAuth } from './delegated-auth.js';
import type { ResourceType } from '../../api/resources.js';

/** A stand-in API server: knows token "good" (user alice, allowed) and "meh" (user bob, denied); counts reviews. */
function fakeClient(calls: string[]): KubeClient {
  const users: Record<string, { username: string; allowed: boolean }> = { good: { username: 'alice', allowed: true }, meh: { username: 'bob', allowed: false } };
  return {
    create: async (rt: ResourceType, obj: { spec: { token?: string; user?: string } }) => {
      calls.push(rt.kind);
      if (rt.kind === 'TokenReview') {
        if (obj.spec.token === 'broken') throw new Error('connection refused');
        const user = users[obj.spec.token ?? ''];
        return { status: user ? { authenticated: true, user: { username: user.username, groups: ['g'] } } : { authenticated: false } };
      }
      return { status: { allowed: Object.values(users).find((u) => u.username === obj.spec.user)?.allowed ?? false } };
    },
  } as unknown as KubeClient; // only create() is used
}

describe('DelegatedAuth', () => {
  it('answers 401, 403 or 200 and reuses answers until they expire', async () => {
    const calls: string[] = [];
    let now = 1_000_000;
    const auth = new DelegatedAuth(fakeClient(calls), { cacheTtlMs: 10_000, now: () => now });
    expect((await auth.check(undefined, '/metrics')).code).toBe(401);
    expect((await auth.check('Basic abc', '/metrics')).code).toBe(401);
    expect(calls).toEqual([]);
    expect((await auth.check('Bearer nope', '/metrics')).code).toBe(401);
    expect((await auth.check('Bearer meh', '/metrics')).code).toBe(403);
    expect((await auth.check('Bearer good', '/metrics')).code).toBe(200);
    expect(calls).toEqual(['TokenReview', 'TokenReview', 'SubjectAccessReview', 'TokenReview', 'SubjectAccessReview']);

    calls.length = 0;
    now += 9_999;
    expect((await auth.check('Bearer good', '/metrics')).code).toBe(200);
    expect((await auth.check('Bearer meh', '/metrics')).code).toBe(403);
    expect((await auth.check('Bearer nope', '/metrics')).code).toBe(401);
    expect(calls).toEqual([]);

    now += 2;
    expect((await auth.check('Bearer good', '/metrics')).code).toBe(200);
    expect(calls).toEqual(['TokenReview', 'SubjectAccessReview']);
  });

  it('answers 401 when the token review fails, and does not cache the failure', async () => {
    const calls: string[] = [];
    const auth = new DelegatedAuth(fakeClient(calls));
    expect(await auth.check('Bearer broken', '/metrics')).toEqual({ code: 401, reason: expect.stringContaining('connection refused') });
    expect(await auth.check('Bearer broken', '/metrics')).toMatchObject({ code: 401 });
    expect(calls).toEqual(['TokenReview', 'TokenReview']);
  });

  it('keeps at most cacheSize answers', async () => {
    const calls: string[] = [];
    const auth = new DelegatedAuth(fakeClient(calls), { cacheSize: 1 });
    await auth.check('Bearer good', '/metrics');
    await auth.check('Bearer meh', '/metrics');
    calls.length = 0;
    await auth.check('Bearer good', '/metrics');
    expect(calls).toEqual(['TokenReview', 'SubjectAccessReview']);
  });
});
