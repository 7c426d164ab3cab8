import { describe, expect, it } from '@jest/globals';
import type { Service } from '../../api/wire.js';
import { resolveIPFamilies, validateClusterIPFields } from './families.js';
import type { IPFamily } from '../../api/ip.js';
import { errorString } from '../../api/status.js';

type Spec = NonNullable<Service['spec']>;
const service = (spec: Spec): Service => ({ metadata: { name: 'web', namespace: 'default' }, spec: { type: 'ClusterIP', ...spec } });
const withSelector = (spec: Spec): Service => service({ selector: { app: 'web' }, ...spec });

const V4: IPFamily[] = ['IPv4'];
const V6: IPFamily[] = ['IPv6'];
const DUAL_V4: IPFamily[] = ['IPv4', 'IPv6'];
const DUAL_V6: IPFamily[] = ['IPv6', 'IPv4'];

function resolve(newService: Service, cluster: IPFamily[], oldService?: Service) {
  const result = resolveIPFamilies(newService, oldService, cluster);
  return {
    policy: result.service.spec?.ipFamilyPolicy,
    families: result.service.spec?.ipFamilies,
    clusterIPs: result.service.spec?.clusterIPs,
    errors: result.errors.map((e) => errorString(e)),
  };
}

describe('resolveIPFamilies on create (spec §1.4)', () => {
  it.each<[string, Service, IPFamily[], string | undefined, string[] | undefined]>([
    ['no policy, single-stack IPv4 cluster', withSelector({}), V4, 'SingleStack', ['IPv4']],
    ['no policy, single-stack IPv6 cluster', withSelector({}), V6, 'SingleStack', ['IPv6']],
    ['no policy, dual-stack cluster: primary family only', withSelector({}), DUAL_V4, 'SingleStack', ['IPv4']],
    ['no policy, IPv6-primary dual-stack cluster', withSelector({}), DUAL_V6, 'SingleStack', ['IPv6']],
    ['PreferDualStack on a dual-stack cluster gets both', withSelector({ ipFamilyPolicy: 'PreferDualStack' }), DUAL_V4, 'PreferDualStack', ['IPv4', 'IPv6']],
    ['PreferDualStack on a single-stack cluster stays single, silently', withSelector({ ipFamilyPolicy: 'PreferDualStack' }), V4, 'PreferDualStack', ['IPv4']],
    ['RequireDualStack on a dual-stack cluster gets both', withSelector({ ipFamilyPolicy: 'RequireDualStack' }), DUAL_V6, 'RequireDualStack', ['IPv6', 'IPv4']],
    ['a requested family comes first, the other is appended', withSelector({ ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6'] }), DUAL_V4, 'RequireDualStack', ['IPv6', 'IPv4']],
    ['families are read off clusterIPs', withSelector({ clusterIP: 'fd00:10:96::5', clusterIPs: ['fd00:10:96::5'] }), DUAL_V4, 'SingleStack', ['IPv6']],
    ['both families read off two clusterIPs', withSelector({ ipFamilyPolicy: 'RequireDualStack', clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5', 'fd00:10:96::5'] }), DUAL_V6, 'RequireDualStack', ['IPv4', 'IPv6']],
    ['PreferDualStack with one IPv6 clusterIP gains IPv4 second', withSelector({ ipFamilyPolicy: 'PreferDualStack', clusterIP: 'fd00::5', clusterIPs: ['fd00::5'] }), DUAL_V4, 'PreferDualStack', ['IPv6', 'IPv4']],
    ['headless without selector defaults to RequireDualStack and both families, even single-stack', service({ clusterIP: 'None', clusterIPs: ['None'] }), V4, 'RequireDualStack', ['IPv4', 'IPv6']],
    ['headless without selector on an IPv6 cluster', service({ clusterIP: 'None', clusterIPs: ['None'] }), V6, 'RequireDualStack', ['IPv6', 'IPv4']],
    ['headless without selector, SingleStack asked', service({ clusterIP: 'None', clusterIPs: ['None'], ipFamilyPolicy: 'SingleStack' }), DUAL_V4, 'SingleStack', ['IPv4']],
    ['headless with a selector is an ordinary SingleStack Service', withSelector({ clusterIP: 'None', clusterIPs: ['None'] }), DUAL_V4, 'SingleStack', ['IPv4']],
    ['headless with a selector, PreferDualStack on a dual-stack cluster', withSelector({ clusterIP: 'None', clusterIPs: ['None'], ipFamilyPolicy: 'PreferDualStack' }), DUAL_V4, 'PreferDualStack', ['IPv4', 'IPv6']],
  ])('%s', (_label, input, cluster, policy, families) => {
    const result = resolve(input, cluster);
    expect(result.errors).toEqual([]);
    expect(result.policy).toBe(policy);
    expect(result.families).toEqual(families);
  });

  it('leaves ExternalName Services alone', () => {
    const input = service({ type: 'ExternalName', externalName: 'example.com' });
    expect(resolveIPFamilies(input, undefined, DUAL_V4)).toEqual({ service: input, errors: [] });
  });

  it.each<[string, Service, IPFamily[], string[]]>([
    [
      'RequireDualStack on a single-stack cluster',
      withSelector({ ipFamilyPolicy: 'RequireDualStack' }),
      V4,
      ['spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services'],
    ],
    [
      'a clusterIP of a family the cluster lacks',
      withSelector({ clusterIP: 'fd00::5', clusterIPs: ['fd00::5'] }),
      V4,
      ['spec.clusterIPs[0]: Invalid value: ["fd00::5"]: IPv6 is not configured on this cluster'],
    ],
    [
      'a requested family the cluster lacks',
      withSelector({ ipFamilies: ['IPv6'] }),
      V4,
      ['spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster'],
    ],
    [
      'SingleStack with two clusterIPs',
      withSelector({ ipFamilyPolicy: 'SingleStack', clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5', 'fd00::5'] }),
      DUAL_V4,
      ["spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"],
    ],
    [
      'SingleStack with two families',
      withSelector({ ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv4', 'IPv6'] }),
      DUAL_V4,
      ["spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"],
    ],
    [
      'no policy (so SingleStack) with two clusterIPs and two families',
      withSelector({ clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5', 'fd00::5'], ipFamilies: ['IPv4', 'IPv6'] }),
      DUAL_V4,
      [
        "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
        "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
      ],
    ],
    [
      'RequireDualStack with two families on a single-stack cluster',
      withSelector({ ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] }),
      V4,
      [
        'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services',
        'spec.ipFamilies[1]: Invalid value: "IPv6": not configured on this cluster',
      ],
    ],
  ])('refuses %s', (_label, input, cluster, errors) => {
    expect(resolve(input, cluster).errors).toEqual(errors);
  });
});

describe('validateClusterIPFields (structural checks, stage 1)', () => {
  it.each<[string, Spec, string[]]>([
    ['clusterIPs without clusterIP', { clusterIPs: ['10.96.0.5'] }, ['spec.clusterIPs: Invalid value: ["10.96.0.5"]: must be empty when `clusterIP` is not specified']],
    ['clusterIP without clusterIPs', { clusterIP: '10.96.0.5' }, ['spec.clusterIPs: Required value']],
    ['a first clusterIPs entry unlike clusterIP', { clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.6'] }, ['spec.clusterIPs: Invalid value: ["10.96.0.6"]: first value must match `clusterIP`']],
    [
      'a malformed IP',
      { clusterIP: '10.0.0.300', clusterIPs: ['10.0.0.300'] },
      ['spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'],
    ],
    [
      'three values',
      { clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5', 'fd00::5', '10.96.0.6'] },
      ['spec.clusterIPs: Invalid value: ["10.96.0.5","fd00::5","10.96.0.6"]: may only hold up to 2 values'],
    ],
    [
      'two IPs of one family',
      { clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5', '10.96.0.6'] },
      ['spec.clusterIPs: Invalid value: ["10.96.0.5","10.96.0.6"]: may specify no more than one IP for each IP family'],
    ],
    ['"None" with another value', { clusterIP: 'None', clusterIPs: ['None', '10.96.0.5'] }, ['spec.clusterIPs: Invalid value: ["None","10.96.0.5"]: \'None\' must be the first and only value']],
    [
      '"None" second',
      { clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5', 'None'] },
      ['spec.clusterIPs[1]: Invalid value: "None": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'],
    ],
    [
      'an IPv6 value where ipFamilies says IPv4',
      { clusterIP: 'fd00::5', clusterIPs: ['fd00::5'], ipFamilies: ['IPv4'] },
      ['spec.clusterIPs[0]: Invalid value: "fd00::5": expected an IPv4 value as indicated by `ipFamilies[0]`'],
    ],
    [
      'an IPv4 value where ipFamilies says IPv6',
      { clusterIP: 'fd00::5', clusterIPs: ['fd00::5', '10.96.0.5'], ipFamilies: ['IPv6', 'IPv6'] },
      [
        'spec.ipFamilies[1]: Duplicate value: "IPv6"',
        'spec.clusterIPs[1]: Invalid value: "10.96.0.5": expected an IPv6 value as indicated by `ipFamilies[1]`',
      ],
    ],
    ['an unknown family', { ipFamilies: ['IPv7'] }, ['spec.ipFamilies[0]: Unsupported value: "IPv7": supported values: "IPv4", "IPv6"']],
    [
      'an unknown policy',
      { ipFamilyPolicy: 'Foo' },
      ['spec.ipFamilyPolicy: Unsupported value: "Foo": supported values: "PreferDualStack", "RequireDualStack", "SingleStack"'],
    ],
    ['leading zeros (allowed without strict validation)', { clusterIP: '010.96.0.5', clusterIPs: ['010.96.0.5'] }, []],
  ])('%s', (_label, spec, errors) => {
    expect(validateClusterIPFields(service(spec), undefined).map((e) => errorString(e))).toEqual(errors);
  });

  it('with StrictIPCIDRValidation refuses leading zeros and IPv4-mapped IPv6, except values already stored', () => {
    const strict = { strictIPValidation: true };
    const leading = service({ clusterIP: '010.96.0.5', clusterIPs: ['010.96.0.5'] });
    expect(validateClusterIPFields(leading, undefined, strict).map((e) => errorString(e))).toEqual([
      'spec.clusterIPs[0]: Invalid value: "010.96.0.5": must not have leading 0s',
    ]);
    const mapped = service({ clusterIP: '::ffff:10.96.0.5', clusterIPs: ['::ffff:10.96.0.5'] });
    expect(validateClusterIPFields(mapped, undefined, strict).map((e) => errorString(e))).toEqual([
      'spec.clusterIPs[0]: Invalid value: "::ffff:10.96.0.5": must not be an IPv4-mapped IPv6 address',
    ]);
    expect(validateClusterIPFields(leading, leading, strict)).toEqual([]);
  });

  it('checks nothing on ExternalName Services', () => {
    expect(validateClusterIPFields(service({ type: 'ExternalName', clusterIPs: ['x'] }), undefined)).toEqual([]);
  });

  it('stops resolving at structural errors', () => {
    expect(resolve(withSelector({ clusterIPs: ['10.96.0.5'] }), V4).errors).toEqual([
      'spec.clusterIPs: Invalid value: ["10.96.0.5"]: must be empty when `clusterIP` is not specified',
    ]);
  });
});

describe('resolveIPFamilies on update (spec §1.4, §1.5)', () => {
  const dualOld = withSelector({
    ipFamilyPolicy: 'RequireDualStack',
    clusterIP: '10.96.0.5',
    clusterIPs: ['10.96.0.5', 'fd00::5'],
    ipFamilies: ['IPv4', 'IPv6'],
  });
  const preferOld = withSelector({
    ipFamilyPolicy: 'PreferDualStack',
    clusterIP: '10.96.0.5',
    clusterIPs: ['10.96.0.5'],
    ipFamilies: ['IPv4'],
  });

  it('inherits the old policy when the update leaves it out', () => {
    const update = withSelector({ clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5', 'fd00::5'], ipFamilies: ['IPv4', 'IPv6'] });
    expect(resolve(update, DUAL_V4, dualOld)).toMatchObject({ policy: 'RequireDualStack', errors: [] });
  });

  it('does not upgrade an untouched PreferDualStack Service after the cluster went dual-stack (issue 101681)', () => {
    expect(resolve(preferOld, DUAL_V4, preferOld)).toMatchObject({ families: ['IPv4'], clusterIPs: ['10.96.0.5'], errors: [] });
  });

  it('upgrades it once the user asks for RequireDualStack', () => {
    const update = withSelector({ ...preferOld.spec, ipFamilyPolicy: 'RequireDualStack' });
    expect(resolve(update, DUAL_V4, preferOld)).toMatchObject({ families: ['IPv4', 'IPv6'], errors: [] });
  });

  it('does not downgrade an untouched PreferDualStack Service after the cluster went single-stack', () => {
    const old = withSelector({ ...dualOld.spec, ipFamilyPolicy: 'PreferDualStack' });
    expect(resolve(old, V4, old)).toMatchObject({ families: ['IPv4', 'IPv6'], clusterIPs: ['10.96.0.5', 'fd00::5'], errors: [] });
  });

  it('trims both lists when the user sets SingleStack and leaves them as they were', () => {
    const update = withSelector({ ...dualOld.spec, ipFamilyPolicy: 'SingleStack' });
    expect(resolve(update, DUAL_V4, dualOld)).toMatchObject({
      policy: 'SingleStack',
      families: ['IPv4'],
      clusterIPs: ['10.96.0.5'],
      errors: [],
    });
  });

  it('refuses to drop the secondary family without SingleStack', () => {
    const update = withSelector({ ...dualOld.spec, ipFamilyPolicy: 'PreferDualStack', clusterIPs: ['10.96.0.5'], ipFamilies: ['IPv4'] });
    expect(resolve(update, DUAL_V4, dualOld).errors).toEqual([
      "spec.ipFamilyPolicy: Invalid value: \"PreferDualStack\": must be 'SingleStack' to release the secondary cluster IP",
      "spec.ipFamilyPolicy: Invalid value: \"PreferDualStack\": must be 'SingleStack' to release the secondary IP family",
    ]);
  });

  it('keeps a stored dual-stack RequireDualStack Service honest on a cluster that lost a family', () => {
    expect(resolve(dualOld, V4, dualOld).errors).toEqual([
      'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services',
      'spec.ipFamilies[1]: Invalid value: "IPv6": not configured on this cluster',
    ]);
  });

  it('gives an ExternalName -> ClusterIP update a policy as on create', () => {
    const old = service({ type: 'ExternalName', externalName: 'example.com' });
    expect(resolve(withSelector({}), DUAL_V4, old)).toMatchObject({ policy: 'SingleStack', families: ['IPv4'] });
  });
});
