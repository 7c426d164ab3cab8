// Dual-stack allocation on a real dual-stack API server (issue 11, item 3): kube-apiserver started with
// `--service-cluster-ip-range=10.96.0.0/16,fd00:10:96::/108`, and every request sent to a bare one and to one whose
// Services Switchboard's webhooks allocate, with the answers compared as in differential.int.test.ts (same harness,
// same known exclusion: the webhook denial prefix). Requested addresses come from the static bands (10.96.0.x,
// fd00:10:96::x up to ::100), where no dynamic pick lands.
import { afterAll, beforeAll, describe, it } from '@jest/globals';
import { AllocationDifferential, type DifferentialCase, create, dryRunCreate, jsonPatch, mergePatch, update } from '../../e2e/jest/allocation-differential.js';

const log = (line: string) => process.stderr.write(`[dual-stack] ${line}\n`);

const V6 = (n: number) => `fd00:10:96::${n.toString(16)}`;
const REQUIRE = { ipFamilyPolicy: 'RequireDualStack' } as const;
const PREFER = { ipFamilyPolicy: 'PreferDualStack' } as const;
const SINGLE = { ipFamilyPolicy: 'SingleStack' } as const;

const CASES: DifferentialCase[] = [
  // Policies and family order
  { name: 'single-stack-default-is-primary', steps: [create('ss')] },
  { name: 'single-stack-ipv6', steps: [create('ss-v6', { ...SINGLE, ipFamilies: ['IPv6'] })] },
  { name: 'prefer-dual-stack', steps: [create('pref', PREFER)] },
  { name: 'require-dual-stack', steps: [create('req', REQUIRE)] },
  { name: 'require-dual-stack-ipv6-first', steps: [create('req-v6', { ...REQUIRE, ipFamilies: ['IPv6', 'IPv4'] })] },
  { name: 'prefer-dual-stack-ipv6-given-first', steps: [create('pref-v6', { ...PREFER, ipFamilies: ['IPv6'] })] },
  { name: 'ipv6-families-without-policy', steps: [create('fam-nopol', { ipFamilies: ['IPv6', 'IPv4'] })] },
  { name: 'nodeport-require-dual-stack', steps: [create('np-req', { ...REQUIRE, type: 'NodePort' })] },
  { name: 'dry-run-require-dual-stack', steps: [dryRunCreate('dry-req', { ...REQUIRE, ipFamilies: ['IPv6', 'IPv4'] })] },

  // Explicit clusterIPs pairs
  { name: 'clusterips-pair', steps: [create('pair', { ...REQUIRE, clusterIP: '10.96.0.50', clusterIPs: ['10.96.0.50', V6(0x50)] })] },
  { name: 'clusterips-pair-ipv6-first', steps: [create('pair-v6', { ...PREFER, clusterIP: V6(0x51), clusterIPs: [V6(0x51), '10.96.0.51'] })] },
  { name: 'clusterips-primary-only-secondary-picked', steps: [create('pair-half', { ...REQUIRE, clusterIP: '10.96.0.52', clusterIPs: ['10.96.0.52'] })] },
  { name: 'clusterips-ipv6-primary-only', steps: [create('v6-only', { clusterIP: V6(0x53) })] },
  { name: 'clusterips-non-canonical-ipv6', steps: [create('v6-long', { ...REQUIRE, clusterIP: '10.96.0.54', clusterIPs: ['10.96.0.54', 'fd00:10:96:0:0:0:0:54'] })] },
  { name: 'clusterips-secondary-taken', steps: [create('sec-holder', { clusterIP: V6(0x55) }), create('sec-taken', { ...REQUIRE, clusterIP: '10.96.0.55', clusterIPs: ['10.96.0.55', V6(0x55)] })] },
  { name: 'clusterips-primary-taken-secondary-free', steps: [create('pri-holder', { clusterIP: '10.96.0.56' }), create('pri-taken', { ...REQUIRE, clusterIP: '10.96.0.56', clusterIPs: ['10.96.0.56', V6(0x56)] })] },
  { name: 'clusterips-primary-taken-padded', steps: [create('pad-holder', { clusterIP: '10.96.0.57' }), create('pad-taken', { ...REQUIRE, clusterIP: '10.96.0.57', clusterIPs: ['10.96.0.57'] })] },
  { name: 'clusterips-ipv6-outside-range', steps: [create('v6-out', { ...REQUIRE, clusterIP: '10.96.0.58', clusterIPs: ['10.96.0.58', 'fd00:11::58'] })] },
  { name: 'clusterips-two-ipv6', steps: [create('two-v6', { ...REQUIRE, clusterIP: V6(0x59), clusterIPs: [V6(0x59), V6(0x5a)] })] },
  { name: 'clusterips-pair-single-stack', steps: [create('pair-ss', { ...SINGLE, clusterIP: '10.96.0.60', clusterIPs: ['10.96.0.60', V6(0x60)] })] },
  { name: 'clusterips-pair-no-policy', steps: [create('pair-nopol', { clusterIP: '10.96.0.61', clusterIPs: ['10.96.0.61', V6(0x61)] })] },
  { name: 'clusterips-against-families', steps: [create('pair-fam', { ...REQUIRE, clusterIP: '10.96.0.62', clusterIPs: ['10.96.0.62', V6(0x62)], ipFamilies: ['IPv6', 'IPv4'] })] },
  { name: 'families-duplicate', steps: [create('fam-dup', { ...REQUIRE, ipFamilies: ['IPv6', 'IPv6'] })] },

  // Headless with families
  { name: 'headless-prefer-dual-stack', steps: [create('hl-pref', { ...PREFER, clusterIP: 'None' })] },
  { name: 'headless-ipv6-single-stack', steps: [create('hl-v6', { ...SINGLE, clusterIP: 'None', ipFamilies: ['IPv6'] })] },
  { name: 'headless-selectorless', steps: [create('hl-nosel', { clusterIP: 'None', selector: undefined })] },
  { name: 'headless-selectorless-single-stack', steps: [create('hl-nosel-ss', { ...SINGLE, clusterIP: 'None', selector: undefined })] },

  // Upgrade, downgrade, immutability
  { name: 'upgrade-single-to-prefer', steps: [create('up-pref'), mergePatch('up-pref', PREFER)] },
  { name: 'upgrade-single-to-require-ipv6-primary', steps: [create('up-v6', { ipFamilies: ['IPv6'] }), mergePatch('up-v6', REQUIRE)] },
  { name: 'upgrade-with-requested-secondary', steps: [create('up-req', { clusterIP: '10.96.0.63' }), mergePatch('up-req', { ...REQUIRE, clusterIPs: ['10.96.0.63', V6(0x63)] })] },
  { name: 'upgrade-with-taken-secondary', steps: [create('up-holder', { clusterIP: V6(0x64) }), create('up-taken', { clusterIP: '10.96.0.64' }), mergePatch('up-taken', { ...REQUIRE, clusterIPs: ['10.96.0.64', V6(0x64)] })] },
  { name: 'upgrade-with-secondary-outside-range', steps: [create('up-out', { clusterIP: '10.96.0.69' }), mergePatch('up-out', { ...PREFER, clusterIPs: ['10.96.0.69', 'fd00:11::69'] })] },
  { name: 'upgrade-changing-primary-family', steps: [create('up-swap'), mergePatch('up-swap', { ...PREFER, ipFamilies: ['IPv6', 'IPv4'] })] },
  { name: 'downgrade-to-the-other-family', steps: [create('down-swap', REQUIRE), update('down-swap', (s) => { s.ipFamilyPolicy = 'SingleStack'; s.ipFamilies = ['IPv6']; s.clusterIPs = s.clusterIPs?.slice(1); s.clusterIP = s.clusterIPs?.[0]; })] },
  { name: 'ipv6-primary-taken-padded', steps: [create('v6-holder', { clusterIP: V6(0x6a) }), create('v6-taken', { ...REQUIRE, ipFamilies: ['IPv6', 'IPv4'], clusterIP: V6(0x6a), clusterIPs: [V6(0x6a)] })] },
  { name: 'type-externalname-to-dual-stack-with-taken-secondary', steps: [create('ext-sec-holder', { clusterIP: V6(0x6b) }), create('ext-sec', { type: 'ExternalName', externalName: 'example.com', selector: undefined }), mergePatch('ext-sec', { ...REQUIRE, type: 'ClusterIP', externalName: null, clusterIP: '10.96.0.70', clusterIPs: ['10.96.0.70', V6(0x6b)] })] },
  { name: 'upgrade-families-only', steps: [create('up-fam'), mergePatch('up-fam', { ...PREFER, ipFamilies: ['IPv4', 'IPv6'] })] },
  { name: 'prefer-unchanged-on-unrelated-update', steps: [create('pref-keep', { ...PREFER, ipFamilies: ['IPv4'] }), mergePatch('pref-keep', { selector: { app: 'other' } })] },
  { name: 'downgrade-require-to-single', steps: [create('down', { ...REQUIRE, clusterIP: '10.96.0.65', clusterIPs: ['10.96.0.65', V6(0x65)] }), mergePatch('down', SINGLE), create('down-taker', { clusterIP: V6(0x65) })] },
  { name: 'downgrade-ipv6-primary-to-single', steps: [create('down-v6', { ...PREFER, ipFamilies: ['IPv6', 'IPv4'] }), mergePatch('down-v6', SINGLE)] },
  { name: 'downgrade-without-single-stack', steps: [create('down-bad', { ...REQUIRE, clusterIP: '10.96.0.66', clusterIPs: ['10.96.0.66', V6(0x66)] }), update('down-bad', (s) => { s.clusterIPs = ['10.96.0.66']; })] },
  { name: 'downgrade-families-without-single-stack', steps: [create('down-fam', REQUIRE), update('down-fam', (s) => { s.ipFamilies = ['IPv4']; })] },
  { name: 'downgrade-single-stack-with-both-ips', steps: [create('down-both', { ...REQUIRE, clusterIP: '10.96.0.67', clusterIPs: ['10.96.0.67', V6(0x67)] }), update('down-both', (s) => { s.ipFamilyPolicy = 'SingleStack'; s.ipFamilies = ['IPv4']; })] },
  { name: 'secondary-may-not-change', steps: [create('sec-imm', { ...REQUIRE, clusterIP: '10.96.0.68', clusterIPs: ['10.96.0.68', V6(0x68)] }), mergePatch('sec-imm', { clusterIPs: ['10.96.0.68', V6(0x69)] })] },
  { name: 'family-order-may-not-change', steps: [create('fam-imm', REQUIRE), jsonPatch('fam-imm', [{ op: 'replace', path: '/spec/ipFamilies', value: ['IPv6', 'IPv4'] }])] },
  { name: 'type-externalname-to-require-dual-stack', steps: [create('ext-dual', { type: 'ExternalName', externalName: 'example.com', selector: undefined }), mergePatch('ext-dual', { ...REQUIRE, type: 'ClusterIP', externalName: null })] },
  { name: 'type-dual-stack-to-externalname', steps: [create('dual-ext', REQUIRE), mergePatch('dual-ext', { type: 'ExternalName', externalName: 'example.com' })] },
];

describe('Service allocation on a dual-stack API server: Switchboard answers as kube-apiserver does', () => {
  const differential = new AllocationDifferential({ serviceClusterIPRange: '10.96.0.0/16,fd00:10:96::/108', log });

  beforeAll(() => differential.start(), 240_000);
  afterAll(() => differential.stop());

  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, testCase) => differential.expectSameAnswers(testCase));

  it('holds a bound claim for every value a Service holds, of both families', () => differential.expectWebhookInPathAndClaimsAgree(log));
});
