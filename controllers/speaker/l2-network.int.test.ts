// The L2 LoadBalancer on a real network: three "node" namespaces and a client namespace on one bridge (netlab.ts),
// a real speaker process in each node namespace (`ip netns exec … switchboard speaker`), the allocation controller
// and a dual-stack API server of this suite's own in the root namespace. The speakers reach the API server through
// a Unix-socket forwarder (netlab.ts FORWARDER), which also lets the test cut one node off the API.
//
// Checked with the real tools: arping and ndisc6 get exactly one answer, from the elected node's MAC, and none for
// an address that is not allocated; tcpdump sees the gratuitous burst on takeover; after SIGKILL of the elected
// speaker another node answers, and the failover time is printed; a node cut off the API stops answering before
// another takes over (no split brain). Needs root and `ip netns`; skipped otherwise.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { KubeClient } from '../runtime/client.js';
import { Events, Leases, Services } from '../../api/resources.js';
import type { KubeEvent, Lease, Service } from '../../api/wire.js';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';
import { ManagedProcess } from '../../cmd/up/controlplane/processes.js';
import { Capture, isArpFrom, isNdpFrom as isNaFrom } from '../../e2e/jest/capture.js';
import { eventually } from '../../e2e/jest/cluster.js';
import { ServiceL2Statuses, type ServiceL2Status } from '../../crds/servicel2status.js';
import {
  APP_NS,
  SPEAKER_NS,
  SpeakerLab,
  arpExchange,
  arping as arpingFrom,
  createLabService,
  isGarpReply,
  isGarpRequest,
  isUnsolicitedNa,
  mixedAnswers,
  ndisc as ndiscFrom,
  type LabNode as NodeProcs,
  type LabServiceOptions,
} from '../../e2e/jest/l2-lab.js';
import { FENCED_BY_ANNOTATION } from './lease-fence.js';
import { leaseNameFor } from './node-lease.js';
import { WatchDelayingProxy, isLeaseWatch } from '../../testing/watch-delaying-proxy.js';
import { spread, trials } from '../../e2e/chaos/trials.js';
import { FORWARDER, LAN_PREFIX4, LAN_PREFIX6, NetLab, inNs, netlabUnavailable, runAsync } from '../../cmd/up/netlab.js';

const skipReason = netlabUnavailable();
const suite = skipReason ? describe.skip : describe;

const GARP_COUNT = 3;
const GARP_INTERVAL_MS = 300;
/** The speaker's default lease (cmd/speaker.ts), which the failover figures are about. */
const LEASE_DURATION_MS = 1500;
/** SIGKILL failovers of the IPv4 address: one in `make test`, 30 in `make test-chaos`. */
const FAILOVER_TRIALS = trials(1, 30);
const VIP4_UNUSED = `${LAN_PREFIX4}.209`;
const VIP6_UNUSED = `${LAN_PREFIX6}209`;
/** SIGSTOP → SIGCONT trials: a few in `make test`, 50 in `make test-chaos`. */
const FREEZE_TRIALS = trials(2, 50);
const FREEZE_MS = 10_000;
/** Stalls of the non-holders' Lease watches (the takeover fence test). */
const STALLS = 3;

suite(`L2 speakers in network namespaces${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const speakers = new SpeakerLab({
    tag: 'l2',
    tools: ['arping', 'ndisc6', 'tcpdump'],
    garpCount: GARP_COUNT,
    garpIntervalMs: GARP_INTERVAL_MS,
    speakerFlags: () => ['--lease-renew-interval=500ms'],
  });
  const lab: NetLab = speakers.net;
  const nodes: NodeProcs[] = speakers.nodes;
  let cp: LocalControlPlane;
  let client: KubeClient;
  let work: string;

  const startForwarder = (n: NodeProcs): void => speakers.startForwarder(n);
  const startSpeaker = (n: NodeProcs, kubeconfig?: string): void => speakers.startSpeaker(n, kubeconfig);
  const byName = (name: string): NodeProcs => speakers.byName(name);
  const liveLeases = (): Promise<string[]> => speakers.liveLeases();

  beforeAll(async () => {
    await speakers.start();
    ({ cp, client, work } = speakers);
  }, 180_000);

  afterAll(() => speakers.stop(), 60_000);

  const client4 = (): string => lab.client!.ns;

  /** A LoadBalancer Service with one ready endpoint (on `endpointNode`) and its address. */
  async function service(name: string, family: 'IPv4' | 'IPv6', o: LabServiceOptions = {}): Promise<string> {
    await createLabService(client, APP_NS, name, family, o);
    return eventually(async () => (await client.get<Service>(Services, name, APP_NS)).status?.loadBalancer?.ingress?.[0]?.ip ?? false, 30_000);
  }

  async function loadBalancer(name: string, family: 'IPv4' | 'IPv6'): Promise<{ vip: string; winner: string }> {
    const vip = await service(name, family);
    const winner = await announcer(name);
    await burstOver();
    return { vip, winner };
  }

  const announcer = (name: string, not?: string): Promise<string> => speakers.announcer(name, not);
  const arping = (vip: string, count = 3) => arpingFrom(client4(), vip, count);
  const ndisc = (vip: string) => ndiscFrom(client4(), vip);

  const probe = (vip: string, family: 'IPv4' | 'IPv6', seconds?: number): (() => Promise<void>) => speakers.probe(vip, family, seconds);
  const takeOver = (service: string, vip: string, family: 'IPv4' | 'IPv6', victim: NodeProcs, act: () => Promise<void>) => speakers.takeOver(service, vip, family, victim, act);
  const burstOver = (): Promise<void> => speakers.burstOver();

  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  let v4: { vip: string; winner: string };
  let v6: { vip: string; winner: string };

  it('answers ARP for an allocated address with exactly one reply, from the elected node, and nothing for other addresses', async () => {
    v4 = await loadBalancer('web4', 'IPv4');
    const { macs, rtts } = await arping(v4.vip, 3);
    expect(macs).toEqual(Array(3).fill(byName(v4.winner).host.mac));
    expect((await arping(VIP4_UNUSED, 2)).macs).toEqual([]);
    process.stderr.write(`[l2] ARP: ${v4.vip} answered by ${v4.winner}; reply latency (arping RTT) median ${median(rtts)} ms, max ${Math.max(...rtts)} ms\n`);
    const events = await client.list<KubeEvent>(Events, { namespace: APP_NS, fieldSelector: 'involvedObject.name=web4' });
    expect(events.items.map((e) => [e.reason, e.message])).toEqual(
      expect.arrayContaining([['IPAllocated', `Assigned IP ["${v4.vip}"]`], ['nodeAssigned', `announcing from node "${v4.winner}" with protocol "layer2"`]]),
    );
  });

  it('answers NDP for an allocated IPv6 address with exactly one advertisement, from the elected node', async () => {
    v6 = await loadBalancer('web6', 'IPv6');
    expect(await ndisc(v6.vip)).toEqual([byName(v6.winner).host.mac]);
    expect(await ndisc(VIP6_UNUSED)).toEqual([]);
    process.stderr.write(`[l2] NDP: ${v6.vip} answered by ${v6.winner}\n`);
  });

  it('answers the kernel’s unicast neighbor-unreachability probes for an IPv6 address', async () => {
    const mac = byName(v6.winner).host.mac;
    const ns = client4();
    await runAsync(inNs(ns, 'sysctl', '-qw', 'net.ipv6.neigh.eth0.delay_first_probe_time=0'));
    await runAsync(inNs(ns, 'ip', '-6', 'neigh', 'replace', v6.vip, 'lladdr', mac, 'dev', 'eth0', 'nud', 'stale'));
    const capture = await Capture.start(ns, 'icmp6');
    // One datagram to the address puts the STALE entry through DELAY into PROBE: the kernel's unicast solicitation.
    const send = `require('dgram').createSocket('udp6').send('x', 9, ${JSON.stringify(v6.vip)}, () => process.exit(0))`;
    await runAsync(inNs(ns, process.execPath, '-e', send));
    const state = await eventually(async () => {
      const line = await runAsync(inNs(ns, 'ip', '-6', 'neigh', 'show', v6.vip, 'dev', 'eth0'));
      return /REACHABLE/.test(line) ? line : false;
    }, 5000);
    expect(state).toContain(`lladdr ${mac}`);
    // tcpdump saw the unicast probe to the winner's MAC and its unicast answer.
    await eventually(() => {
      const probe = capture.frames.find((f) => f.dst === mac && f.text.includes(`neighbor solicitation, who has ${v6.vip}`));
      return probe !== undefined && capture.frames.some((f) => f.ms >= probe.ms && isNaFrom(f, v6.vip, mac) && f.dst !== '33:33:00:00:00:01');
    }, 5000);
    capture.stop();
  });

  it('says why nobody announces: externalTrafficPolicy Local without a local endpoint on any node', async () => {
    const vip = await service('local', 'IPv4', { local: true, endpointNode: 'elsewhere' });
    const announced = await eventually(async () => {
      const s = await client.get<ServiceL2Status>(ServiceL2Statuses, 'local', APP_NS);
      return s.status?.conditions?.find((c) => c.type === 'Announced') ?? false;
    }, 30_000);
    expect(announced).toMatchObject({
      status: 'False',
      reason: 'NoEligibleNode',
      message: `no node may announce ${vip}: 3 without a serving local endpoint (externalTrafficPolicy Local) (node1, node2, node3)`,
    });
    expect((await arping(vip, 1)).macs).toEqual([]);
  });

  it('a node cut off the API server stops answering before another node takes over (no split brain), and takes back when it returns', async () => {
    const cut = byName(v4.winner);
    const t = await takeOver('web4', v4.vip, 'IPv4', cut, async () => cut.forwarder?.kill());
    process.stderr.write(`[l2] API partition of ${cut.name}: it went silent ${(t.lastOld - t.at).toFixed(0)} ms after the cut, ${t.next} answered ${(t.firstNew - t.at).toFixed(0)} ms after it (gap ${(t.firstNew - t.lastOld).toFixed(0)} ms)\n`);
    expect(t.lastOld).toBeGreaterThan(t.at - 500);
    expect(t.lastOld).toBeLessThan(t.firstNew);
    // Back on the API, it wins the address back (rendezvous hashing) with no outage in between.
    const back = await takeOver('web4', v4.vip, 'IPv4', byName(t.next), async () => startForwarder(cut));
    process.stderr.write(`[l2] ${cut.name} back on the API: it answered ${(back.firstNew - back.at).toFixed(0)} ms after reconnecting, ${(back.firstNew - back.lastOld).toFixed(0)} ms after ${t.next}'s last answer\n`);
    expect(back.next).toBe(cut.name);
    expect(back.firstNew - back.lastOld).toBeLessThan(1000);
    expect((await arping(v4.vip, 2)).macs).toEqual([cut.host.mac, cut.host.mac]);
  });

  it(`a frozen speaker that resumes never answers together with its successor, nor answers requests queued while frozen (${FREEZE_TRIALS} trials)`, async () => {
    const handbacks: number[] = [];
    for (let trial = 1; trial <= FREEZE_TRIALS; trial++) {
      const victim = byName(await announcer('web4'));
      const capture = await Capture.start(client4(), 'arp');
      const stopProbing = probe(v4.vip, 'IPv4', 60);
      await eventually(() => capture.frames.some((f) => isArpFrom(f, v4.vip, victim.host.mac)), 5000);
      process.kill(victim.speaker!.pid!, 'SIGSTOP');
      const successor = await announcer('web4', victim.name);
      await new Promise((r) => setTimeout(r, FREEZE_MS));
      const resumed = Date.now();
      process.kill(victim.speaker!.pid!, 'SIGCONT');
      // Rendezvous hashing gives the address back to the resumed node: wait for its answers, then a little more.
      await announcer('web4', successor);
      await eventually(() => capture.frames.some((f) => f.ms > resumed && f.src === victim.host.mac && f.text.includes(`Reply ${v4.vip} is-at`)), 10_000);
      await new Promise((r) => setTimeout(r, 1000));
      await stopProbing();
      capture.stop();

      const { requests, replies } = arpExchange(capture.frames, v4.vip, lab.client!.mac);
      const mixed = mixedAnswers(requests, replies);
      // Replies of the resumed node: never more than the requests sent since it resumed (no answer to a queued one).
      const fresh = requests.filter((at) => at >= resumed).length;
      const victimReplies = replies.filter((r) => r.ms >= resumed && r.src === victim.host.mac).length;
      const takenBack = Math.min(...replies.filter((r) => r.ms >= resumed && r.src === victim.host.mac).map((r) => r.ms)) - resumed;
      const successorLast = Math.max(...replies.filter((r) => r.src === byName(successor).host.mac).map((r) => r.ms)) - resumed;
      handbacks.push(Math.round(takenBack));
      process.stderr.write(`[l2] freeze ${trial}/${FREEZE_TRIALS}: ${victim.name} frozen ${FREEZE_MS} ms, ${successor} answered meanwhile; after SIGCONT ${successor}'s last reply at +${successorLast.toFixed(0)} ms, ${victim.name}'s first at +${takenBack.toFixed(0)} ms; ${victimReplies} replies to ${fresh} fresh requests\n`);
      expect(mixed).toEqual([]);
      expect(victimReplies).toBeLessThanOrEqual(fresh);
      await burstOver();
    }
    process.stderr.write(`[l2] resumed node answering again after SIGCONT: ${spread(handbacks)}\n`);
  }, 60_000 + FREEZE_TRIALS * (FREEZE_MS + 25_000));

  it('a node whose link loses carrier gives its addresses up at once: its successor answers within 1 s', async () => {
    const victim = byName(await announcer('web4'));
    // The node's eth0 is one end of a veth pair; the other end is the bridge port p<i>: a cable pulled.
    const port = `p${nodes.indexOf(victim) + 1}`;
    const t = await takeOver('web4', v4.vip, 'IPv4', victim, () => runAsync(['ip', '-n', lab.lan, 'link', 'set', port, 'down']).then(() => undefined));
    process.stderr.write(`[l2] carrier lost on ${victim.name}: ${t.next} answered ${(t.firstNew - t.at).toFixed(0)} ms later (lease still live: the API is on another path)\n`);
    expect(t.firstNew - t.at).toBeLessThanOrEqual(1000);
    await runAsync(['ip', '-n', lab.lan, 'link', 'set', port, 'up']);
    // Carrier back: the rendezvous winner takes its address back, break before make.
    expect(await announcer('web4', t.next)).toBe(victim.name);
    await eventually(async () => (await arping(v4.vip, 1)).macs.join() === victim.host.mac, 10_000);
  }, 60_000);

  it('a speaker whose Lease watch stalls never takes an address from a live holder: its fence conflicts (the takeover fence)', async () => {
    const holder = byName(await announcer('web4'));
    const others = nodes.filter((n) => n !== holder);
    // The other two speakers reach the API through a proxy that can stall their Lease watches (their renewals and
    // every other request pass at once): from a forwarder in their namespace, over a second socket, to the proxy.
    const proxy = await WatchDelayingProxy.start(cp.kubeconfig, { delayMs: 0, delays: isLeaseWatch });
    const kubeconfig = join(work, 'kubeconfig-stalling');
    await proxy.writeKubeconfig(kubeconfig);
    const socket = join(work, 'proxy.sock');
    const extra: ManagedProcess[] = [ManagedProcess.start('forwarder-root-proxy', process.execPath, ['-e', FORWARDER, socket, String(proxy.port)], join(work, 'forwarder-root-proxy.log'))];
    try {
      for (const n of others) {
        await n.speaker?.kill();
        extra.push(ManagedProcess.start(`forwarder-proxy-${n.name}`, 'ip', inNs(n.host.ns, process.execPath, '-e', FORWARDER, String(proxy.port), socket).slice(1), join(work, `forwarder-proxy-${n.name}.log`)));
        startSpeaker(n, kubeconfig);
      }
      await eventually(async () => (await liveLeases()).length === 3, 30_000, 200);
      const capture = await Capture.start(client4(), 'arp');
      const stopProbing = probe(v4.vip, 'IPv4', 60);
      await eventually(() => capture.frames.some((f) => isArpFrom(f, v4.vip, holder.host.mac)), 5000);
      // Three stalls of 2.5 s: each time the others see no renewal of the holder for longer than its 1.5 s Lease.
      for (let i = 0; i < STALLS; i++) {
        proxy.stall(2500);
        await new Promise((r) => setTimeout(r, 3500));
      }
      await stopProbing();
      capture.stop();
      const answeredBy = new Set(capture.frames.filter((f) => f.text.includes(`Reply ${v4.vip} is-at`)).map((f) => f.src));
      const lease = await client.get<Lease>(Leases, leaseNameFor(holder.name), SPEAKER_NS);
      process.stderr.write(`[l2] stalled Lease watches: ${STALLS} stalls of 2.5 s, ${proxy.delayedChunks} chunks held; ${v4.vip} answered by ${[...answeredBy].join(', ')}\n`);
      expect([...answeredBy]).toEqual([holder.host.mac]);
      expect(lease.metadata?.annotations?.[FENCED_BY_ANNOTATION]).toBeUndefined();
      expect(await announcer('web4')).toBe(holder.name);
    } finally {
      const restartedAt = Date.now();
      for (const n of others) {
        await n.speaker?.kill();
        startSpeaker(n);
      }
      // Each restarted speaker renewed its Lease (a killed one's Lease still looks live for its duration), and knows
      // its peers: the next test's failover needs a successor that is up.
      await eventually(async () => {
        for (const n of others) {
          const l = await client.get<Lease>(Leases, leaseNameFor(n.name), SPEAKER_NS);
          if (!(Date.parse(l.spec?.renewTime ?? '') > restartedAt)) return false;
        }
        return true;
      }, 30_000, 200);
      for (const p of extra) await p.kill();
      await proxy.close();
    }
    await eventually(async () => (await liveLeases()).length === 3, 30_000, 200);
    await new Promise((r) => setTimeout(r, 2000)); // the killed processes' Leases renewed by the new ones, seen by all
  }, 120_000);

  it(`fails over within 2 s after SIGKILL of the elected speaker (IPv4), with a gratuitous ARP burst (${FAILOVER_TRIALS} trials)`, async () => {
    const failovers: number[] = [];
    for (let trial = 1; trial <= FAILOVER_TRIALS; trial++) {
      const victim = byName(await announcer('web4'));
      const t = await takeOver('web4', v4.vip, 'IPv4', victim, async () => victim.speaker?.kill());
      const failover = t.firstNew - t.at;
      failovers.push(Math.round(failover));
      process.stderr.write(`[l2] ARP failover ${trial}/${FAILOVER_TRIALS} after SIGKILL of ${victim.name}: ${failover.toFixed(0)} ms (${t.next} took over; lease ${LEASE_DURATION_MS} ms, renew 500 ms)\n`);
      expect(failover).toBeLessThanOrEqual(2000);
      // The takeover was fenced (lease-fence.ts): a survivor CAS-wrote its mark on the dead Lease, renewTime untouched.
      const dead = await client.get<Lease>(Leases, leaseNameFor(victim.name), SPEAKER_NS);
      const [by] = (dead.metadata?.annotations?.[FENCED_BY_ANNOTATION] ?? '').split(' ');
      expect(nodes.filter((n) => n !== victim).map((n) => n.name)).toContain(by);
      const requests = t.frames.filter((f) => isGarpRequest(f, v4.vip, t.mac));
      const replies = t.frames.filter((f) => isGarpReply(f, v4.vip, t.mac));
      expect([requests.length, replies.length]).toEqual([GARP_COUNT, GARP_COUNT]);
      for (const [i, f] of requests.slice(1).entries()) expect(Math.abs(f.ms - requests[i].ms - GARP_INTERVAL_MS)).toBeLessThan(150);
      expect((await arping(v4.vip, 3)).macs).toEqual(Array(3).fill(t.mac));
      if (trial === FAILOVER_TRIALS) break;
      startSpeaker(victim); // as the DaemonSet would; it takes its address back, break before make
      await eventually(async () => (await liveLeases()).length === 3, 30_000, 200);
      await eventually(async () => (await arping(v4.vip, 1)).macs.join() === victim.host.mac, 30_000);
      await burstOver();
    }
    process.stderr.write(`[l2] ARP failover after SIGKILL: ${spread(failovers)}\n`);
  }, 60_000 + FAILOVER_TRIALS * 30_000);

  it('fails over after SIGKILL of the elected speaker (IPv6), with unsolicited neighbor advertisements', async () => {
    // The IPv6 Service may have moved with the previous kill: wait for a live announcer.
    const winner = await eventually(async () => {
      const node = await announcer('web6');
      return byName(node).speaker?.running ? node : false;
    }, 30_000);
    const victim = byName(winner);
    const t = await takeOver('web6', v6.vip, 'IPv6', victim, async () => victim.speaker?.kill());
    const failover = t.firstNew - t.at;
    process.stderr.write(`[l2] NDP failover after SIGKILL of ${victim.name}: ${failover.toFixed(0)} ms (${t.next} took over)\n`);
    expect(failover).toBeLessThanOrEqual(2000);
    expect(t.frames.filter((f) => isUnsolicitedNa(f, v6.vip, t.mac))).toHaveLength(GARP_COUNT);
    expect(await ndisc(v6.vip)).toEqual([t.mac]);
  });
});
