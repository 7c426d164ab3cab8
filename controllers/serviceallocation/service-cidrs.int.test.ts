// Live ServiceCIDRs and reservations against a real kube-apiserver (v1.34: MultiCIDRServiceAllocator locked on,
// networking.k8s.io/v1 ServiceCIDR served) with kube-controller-manager's service-cidr-controller (Ready condition and
// the deletion finalizer). One Switchboard replica without --service-cluster-ip-range, so it follows the ServiceCIDRs.
// Where Switchboard's answer should equal the API server's own, the same request goes to a namespace opted out of
// Switchboard (switchboard.dev/service-allocation=disabled), where kube-apiserver's allocator alone answers.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rangeContainsIP, serviceIPRange } from '../../allocators/service/ip-range.js';
import { nodePortRange } from '../../allocators/service/port-range.js';
import { ServiceClaims, type ServiceClaim } from '../../crds/serviceclaim.js';
import { LocalControlPlane, WEBHOOK_CLIENT_NAME } from '../../cmd/up/controlplane/controlplane.js';
import { freePort } from '../../cmd/up/controlplane/processes.js';
import { eventually } from '../../e2e/jest/cluster.js';
import { Balancer, allocationFlags, audit, bounded, claimsSettle } from '../../e2e/jest/service-allocation.js';
import { ENDPOINT_CONTROLLERS_OFF, replicaFlags, spawnSwitchboard, stopSwitchboard, waitForOutput, type SwitchboardProcess } from '../../e2e/jest/switchboard-process.js';
import { KubeClient } from '../runtime/client.js';
import { Namespaces, ServiceCIDRs, Services } from '../../api/resources.js';
import type { KubeObject, Service } from '../../api/wire.js';
import { OPT_OUT_LABEL } from './webhook-configurations.js';

const NS = 'switchboard-system';
const APPS = 'apps';
const NATIVE = 'native'; // opted out: kube-apiserver's allocator alone
const FIRST = '10.96.0.0/28'; // the `kubernetes` ServiceCIDR: 14 addresses, 10.96.0.1 is the kubernetes Service's
const EXTRA = '10.250.0.0/28';
const log = (line: string) => process.stderr.write(`[service-cidrs] ${line}\n`);

const svcYaml = (namespace: string, name: string, spec: string) =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec: ${spec}\n`;
const serviceCIDRYaml = (name: string, cidr: string) => `apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata:\n  name: ${name}\nspec:\n  cidrs: ["${cidr}"]\n`;
const reservationYaml = (name: string, type: string, value: string, service: string, extra = '') =>
  `apiVersion: switchboard.dev/v1beta1\nkind: ServiceClaim\nmetadata:\n  name: ${name}\nspec:\n  type: ${type}\n  value: "${value}"\n${extra}  service: {namespace: ${APPS}, name: ${service}}\n  reserved: true\n`;

describe('live ServiceCIDRs and reservations', () => {
  let cp: LocalControlPlane;
  let client: KubeClient;
  let replica: SwitchboardProcess;
  const balancer = new Balancer();
  const kubectl = (args: string[], input?: string) => cp.kubectl(args, input);
  const create = (yaml: string) => kubectl(['create', '-f', '-'], yaml);
  const clusterIPOf = async (namespace: string, name: string) => (await client.get<Service>(Services, name, namespace)).spec?.clusterIP ?? '';
  const deleteAllServices = async (namespace: string) => {
    await kubectl(['delete', 'services', '--all', '-n', namespace, '--wait=true']);
    await claimsSettle(client, 30_000);
  };

  beforeAll(async () => {
    cp = await new LocalControlPlane({ serviceClusterIPRange: FIRST, kubeControllerManager: ['service-cidr-controller'], log }).start();
    client = KubeClient.fromFile(cp.kubeconfig, 'service-cidrs-test');
    await client.create(Namespaces, { metadata: { name: NS } });
    await client.create(Namespaces, { metadata: { name: APPS } });
    await client.create(Namespaces, { metadata: { name: NATIVE, labels: { [OPT_OUT_LABEL]: 'disabled' } } });
    await balancer.listen();
    const port = await freePort();
    replica = spawnSwitchboard('cidrs', [
      ...replicaFlags(cp.kubeconfig, NS, 'cidrs'),
      ...ENDPOINT_CONTROLLERS_OFF,
      '--load-balancer-install-crds=false',
      ...allocationFlags(balancer, port, 2000),
      `--webhook-client-ca-file=${cp.info.webhookClientCAFile}`,
      `--webhook-client-names=${WEBHOOK_CLIENT_NAME}`,
    ]);
    balancer.route([port]);
    await waitForOutput(replica, '"admission webhook serving"', 60_000);
    await eventually(async () => (await client.getOrUndefined<ServiceClaim>(ServiceClaims, 'ipv4-10-96-0-1'))?.status?.phase === 'Bound', 30_000);
  });

  afterAll(async () => {
    if (replica) await stopSwitchboard(replica, 'SIGKILL');
    await balancer.close();
    client?.close();
    await cp?.stop();
  });

  it('allocates from a ServiceCIDR created while creates run, fills both, then answers range is full as the API server does', async () => {
    // 26 dynamic creates, 3 at a time; the fifth first creates the ServiceCIDR and, at once, a Service asking for an
    // address of it (the reproduction). A dynamic create running beside it may have taken that address: then
    // the 422 must be upstream's "already allocated", never a range refusal.
    let pinned: { code: number; stderr: string } | undefined;
    const results = await bounded(26, 3, async (i) => {
      if (i === 4) {
        const out = await create(serviceCIDRYaml('extra', EXTRA));
        expect(out.code).toBe(0);
        pinned = await create(svcYaml(APPS, 'pinned', '{clusterIP: 10.250.0.5, ports: [{port: 80}]}'));
        log(`created ServiceCIDR extra ${EXTRA}; pinned: ${pinned.stderr.trim() || 'created'}`);
      }
      const out = await create(svcYaml(APPS, `s${i}`, '{ports: [{port: 80}]}'));
      if (out.code !== 0) throw new Error(`s${i}: ${out.stderr}`);
    });
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    if (pinned?.code === 0) {
      expect(await clusterIPOf(APPS, 'pinned')).toBe('10.250.0.5');
    } else {
      expect(pinned?.stderr).toBe('The Service "pinned" is invalid: spec.clusterIPs: Invalid value: ["10.250.0.5"]: failed to allocate IP 10.250.0.5: provided IP is already allocated\n');
      expect((await create(svcYaml(APPS, 'filler', '{ports: [{port: 80}]}'))).stderr).toBe('');
    }

    const services = (await client.listAll<Service>(Services, { namespace: APPS })).items;
    const ips = services.map((s) => s.spec?.clusterIP ?? '');
    expect(audit(services, { ips: serviceIPRange('0.0.0.0/0'), ports: nodePortRange('30000-32767') }).duplicates).toEqual([]);
    expect(ips.filter((ip) => rangeContainsIP(serviceIPRange(FIRST), ip))).toHaveLength(13); // all but 10.96.0.1 (kubernetes)
    expect(ips.filter((ip) => rangeContainsIP(serviceIPRange(EXTRA), ip))).toHaveLength(14);

    // Both full: Switchboard and the API server alone give the same line.
    const ours = await create(svcYaml(APPS, 'one-more', '{ports: [{port: 80}]}'));
    const native = await create(svcYaml(NATIVE, 'one-more', '{ports: [{port: 80}]}'));
    log(`full: ${ours.stderr.trim()} | native: ${native.stderr.trim()}`);
    expect(native.stderr).toBe('Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed to allocate a serviceIP: range is full\n');
    expect(ours.stderr).toBe(
      'Error from server (InternalError): error when creating "STDIN": admission webhook "allocate.services.switchboard.dev" denied the request: Internal error occurred: failed to allocate a serviceIP: range is full\n',
    );
  });

  it('no longer allocates from a ServiceCIDR being deleted, which goes once its Services are gone', async () => {
    // Keep one Service of EXTRA so that the ServiceCIDR cannot go yet; free everything else.
    const services = (await client.listAll<Service>(Services, { namespace: APPS })).items;
    const keeper = services.find((s) => rangeContainsIP(serviceIPRange(EXTRA), s.spec?.clusterIP ?? ''))?.metadata?.name ?? '';
    await kubectl(['delete', 'services', '-n', APPS, '--wait=true', ...services.map((s) => s.metadata?.name ?? '').filter((n) => n !== keeper)]);
    await claimsSettle(client, 30_000);
    expect((await kubectl(['delete', 'servicecidr', 'extra', '--wait=false'])).code).toBe(0);
    // kube-controller-manager keeps it, marked not ready, while an address of it is in use.
    await eventually(async () => {
      const extra = await client.getOrUndefined<KubeObject & { status?: { conditions?: { type: string; status: string; reason?: string }[] } }>(ServiceCIDRs, 'extra');
      return extra?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False' && c.reason === 'Terminating') ?? false;
    }, 30_000);

    // An address of it is refused, by Switchboard and the API server alike.
    const free = ['10.250.0.9', '10.250.0.10'].find((ip) => !services.some((s) => s.metadata?.name === keeper && s.spec?.clusterIP === ip)) ?? '';
    const expected = `The Service "want-extra" is invalid: spec.clusterIPs: Invalid value: ["${free}"]: failed to allocate IP ${free}: the provided network does not match the current range\n`;
    expect((await create(svcYaml(NATIVE, 'want-extra', `{clusterIP: ${free}, ports: [{port: 80}]}`))).stderr).toBe(expected);
    expect((await create(svcYaml(APPS, 'want-extra', `{clusterIP: ${free}, ports: [{port: 80}]}`))).stderr).toBe(expected);

    // Dynamic creates all land in FIRST (13 free), then the range is full though EXTRA has room.
    const placed: string[] = [];
    for (let i = 0; i < 13; i++) {
      const out = await create(svcYaml(APPS, `d${i}`, '{ports: [{port: 80}]}'));
      expect(out.stderr).toBe('');
      placed.push(await clusterIPOf(APPS, `d${i}`));
    }
    expect(placed.filter((ip) => !rangeContainsIP(serviceIPRange(FIRST), ip))).toEqual([]);
    const full = await create(svcYaml(APPS, 'no-room', '{ports: [{port: 80}]}'));
    expect(full.stderr).toContain('failed to allocate a serviceIP: range is full');

    // Deleting its last Service lets it go (kube-controller-manager waits 10 s after the deletion timestamp).
    const started = Date.now();
    await kubectl(['delete', 'service', keeper, '-n', APPS, '--wait=true']);
    await eventually(async () => (await client.getOrUndefined(ServiceCIDRs, 'extra')) === undefined, 60_000, 500);
    log(`ServiceCIDR extra gone ${Date.now() - started} ms after its last Service`);
    await deleteAllServices(APPS);
  });

  it('gives a reserved value only to its Service, also when it asks for none, and keeps it across delete and re-create', async () => {
    expect((await create(reservationYaml('ipv4-10-96-0-7', 'ClusterIP', '10.96.0.7', 'db', '  family: IPv4\n'))).stderr).toBe('');
    expect((await create(reservationYaml('nodeport-30555', 'NodePort', '30555', 'db'))).stderr).toBe('');
    const got = await kubectl(['get', 'serviceclaims', 'ipv4-10-96-0-7', 'nodeport-30555']);
    log(`kubectl get serviceclaims:\n${got.stdout}`);
    const [header, ...rows] = got.stdout.trim().split('\n');
    expect(header.split(/\s+/)).toEqual(['NAME', 'VALUE', 'TYPE', 'NAMESPACE', 'SERVICE', 'PHASE', 'RESERVED', 'AGE']);
    expect(rows.every((row) => /\s+apps\s+db\s+true\s+\d+s$/.test(row))).toBe(true);

    for (let round = 0; round < 3; round++) {
      // Asks for nothing: gets its reservations.
      expect((await create(svcYaml(APPS, 'db', '{type: NodePort, ports: [{port: 5432}]}'))).stderr).toBe('');
      const db = await client.get<Service>(Services, 'db', APPS);
      expect({ ip: db.spec?.clusterIP, port: db.spec?.ports?.[0].nodePort }).toEqual({ ip: '10.96.0.7', port: 30555 });
      // Anyone else asking for them gets upstream's 422, while db holds them and after db is gone.
      for (const phase of ['held', 'deleted']) {
        if (phase === 'deleted') {
          await kubectl(['delete', 'service', 'db', '-n', APPS, '--wait=true']);
          await new Promise((r) => setTimeout(r, 3000)); // longer than the grace period: a plain claim would be freed
        }
        const ip = await create(svcYaml(APPS, 'thief', '{clusterIP: 10.96.0.7, ports: [{port: 80}]}'));
        expect(ip.stderr).toBe('The Service "thief" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.7"]: failed to allocate IP 10.96.0.7: provided IP is already allocated\n');
        const port = await create(svcYaml(APPS, 'thief', '{type: NodePort, ports: [{port: 80, nodePort: 30555}]}'));
        expect(port.stderr).toBe('The Service "thief" is invalid: spec.ports[0].nodePort: Invalid value: 30555: provided port is already allocated\n');
      }
      const claims = await Promise.all(['ipv4-10-96-0-7', 'nodeport-30555'].map((n) => client.getOrUndefined<ServiceClaim>(ServiceClaims, n)));
      expect(claims.map((c) => c?.spec.reserved)).toEqual([true, true]);
    }
    // Asking for them by number works too.
    expect((await create(svcYaml(APPS, 'db', '{type: NodePort, clusterIP: 10.96.0.7, ports: [{port: 5432, nodePort: 30555}]}'))).stderr).toBe('');
    await eventually(async () => (await client.getOrUndefined<ServiceClaim>(ServiceClaims, 'nodeport-30555'))?.status?.phase === 'Bound', 30_000);
    // The upstream line for a taken IP, for comparison: the API server alone says the same of db's address.
    const native = await create(svcYaml(NATIVE, 'thief', '{clusterIP: 10.96.0.7, ports: [{port: 80}]}'));
    expect(native.stderr).toBe('The Service "thief" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.7"]: failed to allocate IP 10.96.0.7: provided IP is already allocated\n');
  });

  it('refuses bad reservations at admission with a clear message, storing nothing', async () => {
    await create(svcYaml(APPS, 'web', '{type: NodePort, ports: [{port: 80, nodePort: 30600}]}'));
    const webIP = await clusterIPOf(APPS, 'web');
    const webIPName = `ipv4-${webIP.replaceAll('.', '-')}`;
    const cases: [string, string, string][] = [
      ['nodeport-40000', reservationYaml('nodeport-40000', 'NodePort', '40000', 'api'),
        'spec.value: Invalid value: "40000": provided port is not in the valid range. The range of valid ports is 30000-32767'],
      ['ipv4-10-97-0-5', reservationYaml('ipv4-10-97-0-5', 'ClusterIP', '10.97.0.5', 'api'),
        'spec.value: Invalid value: "10.97.0.5": is in no Service CIDR the cluster allocates from (10.96.0.0/28): create a ServiceCIDR for it first'],
      ['ipv6-fd00-0-0-0-0-0-0-5', reservationYaml('ipv6-fd00-0-0-0-0-0-0-5', 'ClusterIP', 'fd00::5', 'api'),
        'spec.value: Invalid value: "fd00::5": IPv6 is not configured on this cluster'],
      ['nodeport-30600', reservationYaml('nodeport-30600', 'NodePort', '30600', 'api'),
        'spec.value: Invalid value: "30600": is already allocated to Service apps/web: only a free value or one that Service apps/api holds can be reserved for it'],
      [webIPName, reservationYaml(webIPName, 'ClusterIP', webIP, 'api'),
        `spec.value: Invalid value: "${webIP}": is already allocated to Service apps/web`],
      ['my-port', reservationYaml('my-port', 'NodePort', '30700', 'api'),
        'metadata.name: Invalid value: "my-port": a reservation is named after its value'],
      ['nodeport-30701', reservationYaml('nodeport-30701', 'NodePort', '30700', 'api'),
        'spec.value: Invalid value: "30700": must be "30701", the value nodeport-30701 stands for'],
    ];
    for (const [name, yaml, detail] of cases) {
      const out = await create(yaml);
      log(`${name}: ${out.stderr.trim()}`);
      expect(out.code).toBe(1);
      // A 422 from the webhook reaches kubectl as it is, as the API server's own validation would.
      expect(out.stderr).toContain(`The ServiceClaim "${name}" is invalid: ${detail}`);
      // Nothing stored: no claim, or web's own claim as it was.
      const stored = await client.getOrUndefined<ServiceClaim>(ServiceClaims, name);
      expect(stored && { reserved: stored.spec.reserved, service: `${stored.spec.service.namespace}/${stored.spec.service.name}` }).toEqual(
        [webIPName, 'nodeport-30600'].includes(name) ? { reserved: undefined, service: 'apps/web' } : undefined,
      );
    }
    // Web's own values can be reserved for web: patch its claim.
    const patched = await kubectl(['patch', 'serviceclaim', 'nodeport-30600', '--type=merge', '-p', '{"spec":{"reserved":true}}']);
    expect(patched.stderr).toBe('');
    // ...but not handed to another Service while web holds it.
    const moved = await kubectl(['patch', 'serviceclaim', 'nodeport-30600', '--type=merge', '-p', '{"spec":{"service":{"name":"api"}}}']);
    expect(moved.stderr).toContain('is already allocated to Service apps/web');
  });

  it('treats overlapping CIDRs and a family the cluster does not serve as the API server does', async () => {
    await deleteAllServices(APPS);
    // A /30 inside FIRST: 10.96.0.3 is its broadcast address but a usable address of FIRST, so it is granted.
    expect((await create(serviceCIDRYaml('inner', '10.96.0.0/30'))).code).toBe(0);
    // An IPv6 CIDR on this IPv4-only cluster: no allocator serves it.
    const v6 = await create(serviceCIDRYaml('v6', 'fd00:99::/112'));
    log(`IPv6 ServiceCIDR on an IPv4 cluster: ${v6.stderr.trim() || 'created'}`);
    await new Promise((r) => setTimeout(r, 1000)); // both watches (the API server's and ours) see them
    const requests: [string, string][] = [
      ['overlap-ip', '{clusterIP: 10.96.0.14, ports: [{port: 80}]}'],
      ['inner-broadcast', '{clusterIP: 10.96.0.3, ports: [{port: 80}]}'],
      ['v6-family', '{ipFamilies: [IPv6], ports: [{port: 80}]}'],
      ['v6-ip', '{clusterIP: "fd00:99::5", ports: [{port: 80}]}'],
      ['v6-prefer', '{ipFamilyPolicy: PreferDualStack, ipFamilies: [IPv6, IPv4], ports: [{port: 80}]}'],
    ];
    for (const [name, spec] of requests) {
      // The API server alone first; a native Service created gives its value back before ours asks for it.
      const native = await create(svcYaml(NATIVE, name, spec));
      if (native.code === 0) await kubectl(['delete', 'service', name, '-n', NATIVE, '--wait=true']);
      const ours = await create(svcYaml(APPS, name, spec));
      log(`${name}: native ${native.stderr.trim() || 'created'} | ours ${ours.stderr.trim() || 'created'}`);
      expect({ name, code: ours.code, stderr: ours.stderr }).toEqual({ name, code: native.code, stderr: native.stderr });
    }
    await kubectl(['delete', 'servicecidr', 'inner', 'v6', '--ignore-not-found', '--wait=false']);
  });
});
