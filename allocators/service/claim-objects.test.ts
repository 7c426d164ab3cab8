import { describe, expect, it } from '@jest/globals';
import { ipClaim, nodePortClaim } from './claim-names.js';
import {
  claimObject,
  claimNamesService,
  claimServiceKey,
  claimValueOf,
  confirmPatch,
  contestPatch,
  reconfirmPatch,
  reserveAgainPatch,
  takeOverPatch,
  unconfirmPatch,
} from './claim-objects.js';

describe('claim objects', () => {
  it('names a claim after its value and records the Service and the request', () => {
    expect(claimObject(ipClaim('2001:db8::a'), { namespace: 'app', name: 'web' }, 'req-1')).toEqual({
      metadata: { name: 'ipv6-2001-db8-0-0-0-0-0-a', labels: { 'switchboard.dev/claim-type': 'ClusterIP' } },
      spec: { type: 'ClusterIP', value: '2001:db8::a', family: 'IPv6', service: { namespace: 'app', name: 'web', uid: '' }, request: 'req-1' },
    });
    const port = claimObject(nodePortClaim(30080), { namespace: 'app', name: 'web', uid: 'u1' });
    expect(port.spec).toEqual({ type: 'NodePort', value: '30080', service: { namespace: 'app', name: 'web', uid: 'u1' } });
    expect(claimValueOf(port)).toEqual(nodePortClaim(30080));
    expect(claimServiceKey(port)).toBe('app/web');
    expect(claimNamesService(port, { namespace: 'app', name: 'web' })).toBe(true);
    expect(claimNamesService(port, { namespace: 'other', name: 'web' })).toBe(false);
  });

  it('writes every webhook change as a test-and-set JSON patch that changes the spec', () => {
    const owner = { namespace: 'app', name: 'web', uid: 'u1' };
    const tests = (uid?: string) => [
      { op: 'test', path: '/spec/service/namespace', value: 'app' },
      { op: 'test', path: '/spec/service/name', value: 'web' },
      ...(uid === undefined ? [] : [{ op: 'test', path: '/spec/service/uid', value: uid }]),
    ];
    const request = { op: 'add', path: '/spec/request', value: 'req-2' };
    expect(reserveAgainPatch(owner, 'req-2')).toEqual([...tests(), { op: 'add', path: '/spec/service/uid', value: '' }, request]);
    expect(confirmPatch({ namespace: 'app', name: 'web', uid: '' }, owner, 'req-2')).toEqual([
      ...tests(''),
      { op: 'replace', path: '/spec/service/name', value: 'web' },
      { op: 'replace', path: '/spec/service/uid', value: 'u1' },
      request,
    ]);
    expect(reconfirmPatch(owner, 'req-2')).toEqual([...tests('u1'), request]);
    expect(unconfirmPatch(owner)).toEqual([...tests('u1'), { op: 'replace', path: '/spec/service/uid', value: '' }]);
    // The controller binds without a request.
    expect(confirmPatch({ namespace: 'app', name: 'web', uid: 'old' }, owner)).toHaveLength(5);
    // Taking over and contesting are conditional on the version decided on, and a takeover moves the namespace too.
    const atVersion = { op: 'test', path: '/metadata/resourceVersion', value: '42' };
    expect(takeOverPatch('42', { namespace: 'other', name: 'api' }, 'req-2')).toEqual([
      atVersion,
      { op: 'replace', path: '/spec/service', value: { namespace: 'other', name: 'api', uid: '' } },
      request,
    ]);
    expect(takeOverPatch('42', owner, 'req-2')[1]).toEqual({ op: 'replace', path: '/spec/service', value: owner });
    expect(contestPatch('42', 'req-2')).toEqual([atVersion, request]);
  });
});
