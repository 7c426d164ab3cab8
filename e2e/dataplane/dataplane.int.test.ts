// Traffic proof: real packets through real kube-proxies (nftables mode), driven by the EndpointSlices Switchboard
// writes, in the lab of cmd/up/dataplane-lab.ts (three node namespaces on one bridge, pods as namespaces behind
// them, a client on the LAN, the L2 speakers in the node namespaces). Short by default (CI);
// SWITCHBOARD_DATAPLANE=full (make test-dataplane) runs the full trial counts and durations. Needs root.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { IPAddressPools } from '../../crds/ipaddresspool.js';
import { L2Advertisements } from '../../crds/l2advertisement.js';
import { ServiceL2Statuses, type ServiceL2Status } from '../../crds/servicel2status.js';
import { Leases, Namespaces, Services } from '../../api/resources.js';
import type { Lease, Service } from '../../api/wire.js';
import { leaseNameFor } from '../../controllers/speaker/node-lease.js';
import { inNs, runAsync, LAN_PREFIX4, LAN_PREFIX6 } from '../../cmd/up/netlab.js';
import type { LabNode, LabPod, RequestAgent } from '../../cmd/up/dataplane-lab.js';
import { eventually } from '../jest/cluster.js';
import { bounded } from '../jest/service-allocation.js';
import { DataplaneCluster, SPEAKER_NS, answeredBy, countErrors, dataplaneUnavailable, namesOf, rollingUpdate, sleep } from './cluster.js';

const skipReason = dataplaneUnavailable();
const suite = skipReason ? describe.skip : describe;
const FULL = process.env.SWITCHBOARD_DATAPLANE === 'full';
const NS = 'app';

suite(`Traffic through kube-proxy and the speakers${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const cluster = new DataplaneCluster();
  let node1: LabNode;

  beforeAll(async () => {
    await cluster.start({ log: (line) => process.stderr.write(`[dataplane] ${line}\n`) });
    await cluster.client.create(Namespaces, { metadata: { name: NS } });
    await cluster.use('switchboard');
    node1 = cluster.lab.nodes[0];
  }, 600_000);

  afterAll(async () => {
    await cluster.stop();
  }, 60_000);

  /** `count` pods named `<app>-<first+i>`, round-robin over the nodes from `firstNode`. */
  async function pods(app: string, count: number, o: { ready: boolean; first?: number; nodes?: LabNode[] }): Promise<LabPod[]> {
    const nodes = o.nodes ?? cluster.lab.nodes;
    const made = await bounded(count, 8, (i) =>
      cluster.lab.addPod({ namespace: NS, name: `${app}-${(o.first ?? 0) + i}`, node: nodes[i % nodes.length], labels: { app }, ready: o.ready }),
    );
    return made.map((r) => {
      if (r.status === 'rejected') throw r.reason;
      return r.value;
    });
  }

  const ips = (list: readonly LabPod[]): string[] => list.map((p) => p.ip).sort();

  // Scaled to 250 pods (three slices) in the full form, 120 (two) in the short one.
  it('ClusterIP: 1000 requests reach every ready pod and never a not-ready or terminating one; scaled up, every pod is reached', async () => {
    const scaled = FULL ? 250 : 120;
    const ready = await pods('web', 3, { ready: true });
    const [notReady] = await pods('web', 1, { ready: false, first: 3 });
    const [terminating] = await pods('web', 1, { ready: true, first: 4 });
    const svc = await cluster.service(NS, 'web', {});
    const url = `http://${svc.spec!.clusterIP}:80/`;
    await eventually(async () => (await cluster.endpoints(NS, 'web')).ready.length === 4, 30_000);
    await cluster.lab.terminatePod(terminating);
    await eventually(async () => JSON.stringify((await cluster.endpoints(NS, 'web')).ready) === JSON.stringify(ips(ready)), 30_000);
    // kube-proxy programs what the slices say within its sync period; then every request must land on a ready pod.
    await eventually(async () => {
      const probe = answeredBy(await node1.agent.batch(url, 60, 8));
      return probe.failed === 0 && [...probe.names].sort().join() === namesOf(ready).join();
    }, 30_000, 500);
    const results = await node1.agent.batch(url, 1000, 16);
    const { names, failed } = answeredBy(results);
    expect(failed).toBe(0);
    expect([...names].sort()).toEqual(namesOf(ready));
    expect(names.has(notReady.name)).toBe(false);
    expect(names.has(terminating.name)).toBe(false);

    const more = await pods('web', scaled - 3, { ready: true, first: 5 });
    const all = namesOf([...ready, ...more]);
    await eventually(async () => (await cluster.endpoints(NS, 'web')).ready.length === scaled, 60_000, 500);
    const reached = new Set<string>();
    for (let round = 0; round < 12 && reached.size < all.length; round++) {
      const batch = await node1.agent.batch(url, 500, 16);
      expect(answeredBy(batch).failed).toBe(0);
      for (const r of batch) if (r.body) reached.add(r.body);
    }
    expect([...reached].sort()).toEqual(all);
    expect(reached.has(notReady.name) || reached.has(terminating.name)).toBe(false);
  }, 300_000);

  /** Waits until `count` requests from `agent` to `url` are all answered, only by pods named in `by`. */
  async function reaches(agent: RequestAgent, url: string, by: readonly string[], count = 30): Promise<void> {
    await eventually(async () => {
      const probe = answeredBy(await agent.batch(url, count, 8, 1000));
      return probe.failed === 0 && [...probe.names].every((n) => by.includes(n));
    }, 30_000, 300);
  }

  it('NodePort: every node forwards to the pods; with externalTrafficPolicy Local only nodes with a local ready pod answer', async () => {
    const [n1, n2, n3] = cluster.lab.nodes;
    const local = await pods('local', 2, { ready: true, nodes: [n1, n2] });
    await pods('local', 1, { ready: false, first: 2, nodes: [n3] });
    const np = await cluster.service(NS, 'local-np', { type: 'NodePort', selector: { app: 'local' } });
    const port = np.spec!.ports![0].nodePort!;
    for (const node of cluster.lab.nodes) await reaches(cluster.lab.clientAgent, `http://${node.host.ipv4}:${port}/`, namesOf(local));

    const svc = await cluster.service(NS, 'local', { type: 'NodePort', externalTrafficPolicy: 'Local' });
    const localPort = svc.spec!.ports![0].nodePort!;
    await reaches(cluster.lab.clientAgent, `http://${n1.host.ipv4}:${localPort}/`, [local[0].name]);
    await reaches(cluster.lab.clientAgent, `http://${n2.host.ipv4}:${localPort}/`, [local[1].name]);
    const fromN1 = answeredBy(await cluster.lab.clientAgent.batch(`http://${n1.host.ipv4}:${localPort}/`, 50, 8, 1000));
    expect({ failed: fromN1.failed, names: [...fromN1.names] }).toEqual({ failed: 0, names: [local[0].name] });
    // node3 has only a not-ready pod: kube-proxy drops the traffic rather than sending it to another node.
    const fromN3 = await cluster.lab.clientAgent.batch(`http://${n3.host.ipv4}:${localPort}/`, 5, 5, 1000);
    expect(fromN3.filter((r) => r.body)).toEqual([]);
  });

  describe('LoadBalancer through the speakers', () => {
    let vip = '';
    let url = '';

    const announcer = (service = 'web-lb'): Promise<string> =>
      eventually(async () => {
        const s = await cluster.client.get<ServiceL2Status>(ServiceL2Statuses, service, NS);
        const announced = s.status?.conditions?.find((c) => c.type === 'Announced');
        return announced?.status === 'True' && s.status?.node ? s.status.node : false;
      }, 30_000);

    const ingressIP = (service: string): Promise<string> =>
      eventually(async () => (await cluster.client.get<Service>(Services, service, NS)).status?.loadBalancer?.ingress?.[0]?.ip ?? false, 30_000);

    beforeAll(async () => {
      await cluster.client.create(IPAddressPools, { metadata: { name: 'lan' }, spec: { addresses: [`${LAN_PREFIX4}.200-${LAN_PREFIX4}.209`, `${LAN_PREFIX6}200-${LAN_PREFIX6}209`] } });
      await cluster.client.create(L2Advertisements, { metadata: { name: 'lan' }, spec: { ipAddressPools: ['lan'] } });
      for (const node of cluster.lab.nodes) cluster.lab.startSpeaker(node, SPEAKER_NS);
      await cluster.service(NS, 'web-lb', { type: 'LoadBalancer', selector: { app: 'local' } });
      vip = await ingressIP('web-lb');
      url = `http://${vip}/`;
    }, 120_000);

    it('the client reaches the pods at http://<LB IP>/ through the node whose speaker answers ARP', async () => {
      const node = cluster.lab.node(await announcer());
      const out = await runAsync(inNs(cluster.lab.net.client!.ns, 'arping', '-c', '2', '-w', '3', '-I', 'eth0', vip));
      const macs = [...out.matchAll(/reply from \S+ \[([0-9A-F:]{17})\]/gi)].map((m) => m[1].toLowerCase());
      expect(new Set(macs)).toEqual(new Set([node.host.mac]));
      await reaches(cluster.lab.clientAgent, url, ['local-0', 'local-1']);
      const results = await cluster.lab.clientAgent.batch(url, 100, 8, 1000);
      const { names } = answeredBy(results);
      expect(results.filter((r) => r.error)).toEqual([]);
      expect([...names].sort()).toEqual(['local-0', 'local-1']);
    });

    it('IPv6: the client reaches the pods at http://[<LB IP>]/ through the node whose speaker answers NDP', async () => {
      await cluster.service(NS, 'web-lb6', { type: 'LoadBalancer', selector: { app: 'local' }, ipFamilies: ['IPv6'], ipFamilyPolicy: 'SingleStack' });
      const vip6 = await ingressIP('web-lb6');
      expect(vip6.startsWith(LAN_PREFIX6)).toBe(true);
      const node = cluster.lab.node(await announcer('web-lb6'));
      const out = await runAsync(inNs(cluster.lab.net.client!.ns, 'ndisc6', '-n', '-m', '-r', '2', '-w', '1000', vip6, 'eth0'));
      const macs = [...out.matchAll(/Target link-layer address: ([0-9A-F:]{17})/gi)].map((m) => m[1].toLowerCase());
      expect(new Set(macs)).toEqual(new Set([node.host.mac]));
      // kube-proxy's IPv6 rules send it to the pods' IPv6 addresses (the Service's slices are of address type IPv6).
      const url6 = `http://[${vip6}]/`;
      await reaches(cluster.lab.clientAgent, url6, ['local-0', 'local-1']);
      const results = await cluster.lab.clientAgent.batch(url6, 100, 8, 1000);
      expect(results.filter((r) => r.error)).toEqual([]);
      expect([...answeredBy(results).names].sort()).toEqual(['local-0', 'local-1']);
      expect((await cluster.endpoints(NS, 'web-lb6')).ready).toEqual([cluster.lab.pod(NS, 'local-0').ipv6, cluster.lab.pod(NS, 'local-1').ipv6].sort());
    });

    /**
     * Failover under load, `trials` times: a request every 20 ms (each a new connection, 300 ms timeout) from the
     * client to a Service with externalTrafficPolicy Local, whose only ready pods are local-0 on node1 and local-1 on
     * node2; so each answer tells which node the client's packets went through. Each trial starts with the client's
     * traffic going through the announcing node, then loses that node's speaker (SIGKILL) and, for `node-lost`,
     * its LAN link too. Returns per trial the traffic gap (first failed → first answered request, 0 if none failed)
     * and when the traffic first went through the new node.
     */
    /** Trials of one failover test that may be run again because the traffic left the victim before its loss. */
    const MAX_REDONE_TRIALS = 2;

    async function failover(service: string, lose: 'speaker' | 'node', trials: number): Promise<{ gaps: number[]; moved: number[] }> {
      const url = `http://${await ingressIP(service)}/`;
      const localPod = (node: LabNode): string => (node === cluster.lab.nodes[0] ? 'local-0' : 'local-1');
      const gaps: number[] = [];
      const moved: number[] = [];
      let redone = 0;
      for (let t = 0; t < trials; t++) {
        const victim = await settledAnnouncer(service, url, localPod);
        const survivor = victim === cluster.lab.nodes[0] ? cluster.lab.nodes[1] : cluster.lab.nodes[0];
        const stream = cluster.lab.clientAgent.stream(url, 20, 8000, 300);
        await sleep(1000);
        const lostAt = Date.now();
        try {
          await victim.speaker!.kill();
          if (lose === 'node') await cluster.lab.setLanLink(victim, false);
          const all = await stream;
          // Until the loss, the traffic went through the victim only (else the trial would measure nothing).
          const before = all.filter((r) => r.at < lostAt - 50);
          const elsewhere = before.filter((r) => r.body !== localPod(victim)).map((r) => `${r.at - lostAt} ms: ${r.body ?? r.error}`);
          if (elsewhere.length > 0 && redone < MAX_REDONE_TRIALS) {
            // The address moved before the loss (once in CI, on a loaded machine; not reproduced in 40 trials here):
            // this trial would measure nothing. Said, with the requests that went elsewhere, and run again, twice at most.
            redone++;
            process.stderr.write(`[dataplane] failover trial ${t + 1} run again: before the loss, requests not through ${victim.name}: ${elsewhere.join(', ')}\n`);
            t--;
          } else {
            expect(answeredBy(before)).toEqual({ failed: 0, names: new Set([localPod(victim)]) });
            const results = all.filter((r) => r.at >= lostAt);
            const firstFailed = results.find((r) => r.error);
            const recovered = firstFailed && results.find((r) => r.at > firstFailed.at && r.body);
            const viaSurvivor = results.find((r) => r.body === localPod(survivor));
            // Traffic moves to the new announcer and stays up once it is back; nothing answers through another node.
            const later = results.filter((r) => recovered && r.at > recovered.at + 500 && r.error);
            const strangers = results.filter((r) => r.body && r.body !== localPod(victim) && r.body !== localPod(survivor));
            const gap = firstFailed && recovered ? recovered.at - firstFailed.at : 0;
            const failed = results.filter((r) => r.error);
            process.stderr.write(`[dataplane] failover trial ${t + 1} (${lose} lost, ${victim.name} → ${survivor.name}): gap ${gap} ms, ${failed.length} failed ${JSON.stringify(countErrors(failed))}, first request through ${survivor.name} after ${viaSurvivor ? viaSurvivor.at - lostAt : '-'} ms\n`);
            expect({ recovered: firstFailed === undefined || recovered !== undefined, movedToSurvivor: viaSurvivor !== undefined, failedAfterRecovery: later.length, strangers: strangers.length }).toEqual({ recovered: true, movedToSurvivor: true, failedAfterRecovery: 0, strangers: 0 });
            gaps.push(gap);
            moved.push(viaSurvivor!.at - lostAt);
          }
        } finally {
          if (lose === 'node') await cluster.lab.setLanLink(victim, true);
          cluster.lab.startSpeaker(victim, SPEAKER_NS);
        }
        await eventually(async () => (await liveSpeakers()) === cluster.lab.nodes.length, 30_000, 200);
      }
      return { gaps, moved };
    }

    /**
     * The node announcing `service` once the election has settled (a restarted speaker takes back the addresses
     * its node wins, a moment after its Lease is live): the same node for two seconds, and the client's traffic
     * going through it only (each node answers with its own local pod).
     */
    async function settledAnnouncer(service: string, url: string, localPod: (node: LabNode) => string): Promise<LabNode> {
      const throughOnly = async (node: LabNode) => {
        const probe = answeredBy(await cluster.lab.clientAgent.batch(url, 20, 4, 1000));
        return probe.failed === 0 && probe.names.size === 1 && probe.names.has(localPod(node));
      };
      return eventually(async () => {
        const node = cluster.lab.node(await announcer(service));
        if (!(await throughOnly(node))) return false;
        await sleep(2000);
        return (await announcer(service)) === node.name && (await throughOnly(node)) ? node : false;
      }, 60_000, 300);
    }

    /** Speakers whose Lease is renewed within its duration. */
    async function liveSpeakers(): Promise<number> {
      const names = new Set(cluster.lab.nodes.map((n) => leaseNameFor(n.name)));
      const leases = (await cluster.client.list<Lease>(Leases, { namespace: SPEAKER_NS })).items.filter((l) => names.has(l.metadata?.name ?? ''));
      return leases.filter((l) => Date.parse(l.spec?.renewTime ?? '') + 2000 > Date.now()).length;
    }

    const summary = (figures: number[]): string => {
      const sorted = [...figures].sort((a, b) => a - b);
      return `min ${sorted[0]} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms`;
    };

    // The node stays up: it still answers what reaches it, so traffic flows through it until the client's neighbour
    // entry moves to the new announcer (its gratuitous ARP), and through the new one after. Goal: gap ≤ 2 s.
    it('failover under load: SIGKILL of the announcing speaker; traffic moves to another node with a gap of at most 2 s', async () => {
      await cluster.service(NS, 'local-lb', { type: 'LoadBalancer', selector: { app: 'local' }, externalTrafficPolicy: 'Local' });
      const trials = FULL ? 20 : 3;
      const { gaps, moved } = await failover('local-lb', 'speaker', trials);
      process.stderr.write(`[dataplane] failover (announcing speaker SIGKILLed) over ${trials} trials: traffic gap ${summary(gaps)}; traffic through the new node after ${summary(moved)}\n`);
      expect(Math.max(...gaps)).toBeLessThanOrEqual(2000);
    }, 900_000);

    // The node is gone from the LAN as well (speaker SIGKILLed, link down): requests fail until the new announcer's
    // gratuitous ARP, one lease duration (1.5 s) after the last renewal at most plus the peers' check; the bound
    // leaves room for a loaded machine (the figures are printed: 1.1–1.4 s here).
    it('failover under load: the announcing node is lost (speaker SIGKILLed, its LAN link down); traffic resumes through another node', async () => {
      const trials = FULL ? 20 : 3;
      const { gaps, moved } = await failover('local-lb', 'node', trials);
      process.stderr.write(`[dataplane] failover (announcing node lost) over ${trials} trials: traffic gap ${summary(gaps)}; traffic through the new node after ${summary(moved)}\n`);
      expect(Math.max(...gaps)).toBeLessThan(3000);
    }, 900_000);
  });

  it('CoreDNS: headless names resolve to ready endpoints with hostnames, ClusterIP names to the ClusterIP, ExternalName to its CNAME', async () => {
    const dns = await cluster.startCoreDNS(cluster.lab.nodes[0]);
    const [n1, n2] = cluster.lab.nodes;
    const db = [
      await cluster.lab.addPod({ namespace: NS, name: 'db-0', node: n1, labels: { app: 'db' }, ready: true, hostname: 'db-0', subdomain: 'db' }),
      await cluster.lab.addPod({ namespace: NS, name: 'db-1', node: n2, labels: { app: 'db' }, ready: true, hostname: 'db-1', subdomain: 'db' }),
      await cluster.lab.addPod({ namespace: NS, name: 'db-2', node: n2, labels: { app: 'db' }, ready: false, hostname: 'db-2', subdomain: 'db' }),
    ];
    await cluster.service(NS, 'db', { clusterIP: 'None' });
    const vip = await cluster.service(NS, 'db-vip', { selector: { app: 'db' } });
    await cluster.client.create<Service>(Services, { metadata: { name: 'ext', namespace: NS }, spec: { type: 'ExternalName', externalName: 'www.example.org' } });
    const agent = n1.agent;
    const ipsOf = async (name: string): Promise<string[]> => {
      const r = await agent.resolve(dns, name, 'A');
      return r.answers ? (r.answers as string[]).sort() : [r.error ?? 'no answer'];
    };
    await eventually(async () => JSON.stringify(await ipsOf(`db.${NS}.svc.cluster.local`)) === JSON.stringify([db[0].ip, db[1].ip].sort()), 30_000, 300);
    expect(await ipsOf(`db-0.db.${NS}.svc.cluster.local`)).toEqual([db[0].ip]);
    expect(await ipsOf(`db-1.db.${NS}.svc.cluster.local`)).toEqual([db[1].ip]);
    expect(await ipsOf(`db-2.db.${NS}.svc.cluster.local`)).toEqual(['ENOTFOUND']);
    expect(await ipsOf(`db-vip.${NS}.svc.cluster.local`)).toEqual([vip.spec!.clusterIP]);
    expect((await agent.resolve(dns, `ext.${NS}.svc.cluster.local`, 'CNAME')).answers).toEqual(['www.example.org']);
    expect((await cluster.endpoints(NS, 'ext'))).toEqual({ ready: [], notReady: [] });
    // A pod turning ready appears in the headless answer.
    await cluster.lab.setPodStatus(db[2], { ready: true });
    await eventually(async () => (await ipsOf(`db.${NS}.svc.cluster.local`)).length === 3, 30_000, 300);
  });

  it('rolling update under load: Switchboard fails no more requests than kube-controller-manager', async () => {
    const o = FULL
      ? { namespace: NS, replicas: 12, wave: 2, durationMs: 60_000, intervalMs: 20, readinessDelayMs: 1000, availableAfterMs: 2000, terminationMs: 500 }
      : { namespace: NS, replicas: 6, wave: 2, durationMs: 20_000, intervalMs: 20, readinessDelayMs: 1000, availableAfterMs: 2000, terminationMs: 500 };
    const sb = await rollingUpdate(cluster, 'switchboard', o);
    const kcm = await rollingUpdate(cluster, 'kube-controller-manager', o);
    await cluster.use('switchboard');
    for (const r of [sb, kcm]) process.stderr.write(`[dataplane] rolling update (${o.replicas} pods, waves of ${o.wave}, ${r.requests} requests at ${1000 / o.intervalMs}/s) with ${r.controllers}: ${r.failed} failed ${JSON.stringify(r.errors)}\n`);
    expect(sb.requests).toBeGreaterThan(0.9 * (o.durationMs / o.intervalMs));
    expect(sb.failed).toBeLessThanOrEqual(kcm.failed);
  }, 600_000);

  // The same paths through kube-proxy's iptables mode (ip6tables for IPv6): kube-proxy removes its nftables rules
  // when it starts in iptables mode. Uses the pods and Services of the tests above.
  describe('kube-proxy in iptables mode', () => {
    beforeAll(async () => {
      await cluster.use('switchboard');
      await cluster.lab.restartKubeProxies('iptables');
    }, 120_000);

    it('ClusterIP reaches only ready pods; NodePort with externalTrafficPolicy Local only local ones; the LoadBalancer (IPv4 and IPv6) reaches the pods', async () => {
      const ready = await pods('ipt', 3, { ready: true });
      const [notReady] = await pods('ipt', 1, { ready: false, first: 3 });
      const [terminating] = await pods('ipt', 1, { ready: true, first: 4 });
      const svc = await cluster.service(NS, 'ipt', {});
      await eventually(async () => (await cluster.endpoints(NS, 'ipt')).ready.length === 4, 30_000);
      await cluster.lab.terminatePod(terminating);
      const url = `http://${svc.spec!.clusterIP}:80/`;
      await reaches(node1.agent, url, namesOf(ready), 60);
      const results = await node1.agent.batch(url, 300, 16);
      expect(answeredBy(results).failed).toBe(0);
      expect([...answeredBy(results).names].sort()).toEqual(namesOf(ready));
      expect(answeredBy(results).names.has(notReady.name) || answeredBy(results).names.has(terminating.name)).toBe(false);

      const [n1, n2, n3] = cluster.lab.nodes;
      const port = (await cluster.client.get<Service>(Services, 'local', NS)).spec!.ports![0].nodePort!;
      await reaches(cluster.lab.clientAgent, `http://${n1.host.ipv4}:${port}/`, ['local-0']);
      await reaches(cluster.lab.clientAgent, `http://${n2.host.ipv4}:${port}/`, ['local-1']);
      const fromN3 = await cluster.lab.clientAgent.batch(`http://${n3.host.ipv4}:${port}/`, 5, 5, 1000);
      expect(fromN3.filter((r) => r.body)).toEqual([]);

      for (const lb of ['web-lb', 'web-lb6']) {
        const ip = (await cluster.client.get<Service>(Services, lb, NS)).status!.loadBalancer!.ingress![0].ip!;
        const lbUrl = ip.includes(':') ? `http://[${ip}]/` : `http://${ip}/`;
        await reaches(cluster.lab.clientAgent, lbUrl, ['local-0', 'local-1']);
        const answers = await cluster.lab.clientAgent.batch(lbUrl, 100, 8, 1000);
        expect({ lb, failed: answeredBy(answers).failed, names: [...answeredBy(answers).names].sort() }).toEqual({ lb, failed: 0, names: ['local-0', 'local-1'] });
      }
    }, 180_000);
  });
});
