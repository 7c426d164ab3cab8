// The raw-socket addon and the responder against real tools, in network namespaces this test creates:
//   sbr-<id> (responder) ── veth ── sbq-<id> (arping, ndisc6)
// The responder runs as `ip netns exec sbr-<id> node standalone-responder.js`, from a transpiled copy of the
// sources; the prober's filters are measured the same way (testing/probe-counter.ts). Only addresses inside these namespaces are used. Needs root and `ip netns`; skipped otherwise.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { ADDON_BUILD_COMMAND, NEIGHBOR_SOLICITATION_FILTER, addonPath } from './raw-socket.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');

function unavailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network namespaces and packet sockets need it)';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return '`ip netns` is unavailable';
  return undefined;
}
const skipReason = unavailable();
const suite = skipReason ? describe.skip : describe;

const id = randomBytes(3).toString('hex');
const NS_RESPONDER = `sbr-${id}`;
const NS_CLIENT = `sbq-${id}`;
const IF_RESPONDER = `sbr${id}`;
const IF_CLIENT = `sbq${id}`;
const VIP4 = '10.251.77.100';
const VIP6 = 'fd00:5b:77::100';
const OFF_SUBNET_VIP = '10.252.0.100';

function sh(cmd: string[], allowFail = false): string {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}
const inNs = (ns: string, ...cmd: string[]): string[] => ['ip', 'netns', 'exec', ns, ...cmd];

/** Transpiles `entry` and the relative imports it reaches into `outDir`, keeping the repository layout. */
function transpileClosure(entry: string, outDir: string): void {
  const pending = [entry];
  const done = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop() as string;
    if (done.has(file)) continue;
    done.add(file);
    const source = readFileSync(file, 'utf8');
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }, fileName: file }).outputText;
    const out = join(outDir, relative(repo, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, js);
    for (const m of source.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) {
      const dep = resolve(dirname(file), `${m[1]}.ts`);
      if (existsSync(dep)) pending.push(dep);
    }
  }
}

suite(`raw socket in network namespaces${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let responder: ChildProcessWithoutNullStreams | undefined;
  let responderMac = '';
  const lines: Record<string, unknown>[] = [];
  let work = '';

  beforeAll(async () => {
    if (!existsSync(addonPath())) sh(['sh', '-c', `cd ${repo} && ${ADDON_BUILD_COMMAND}`]);
    for (const tool of ['arping', 'ndisc6']) {
      if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing: apt-get install iputils-arping ndisc6`);
    }
    sh(['ip', 'netns', 'add', NS_RESPONDER]);
    sh(['ip', 'netns', 'add', NS_CLIENT]);
    sh(['ip', 'link', 'add', IF_RESPONDER, 'netns', NS_RESPONDER, 'type', 'veth', 'peer', 'name', IF_CLIENT, 'netns', NS_CLIENT]);
    for (const [ns, ifname, v4, v6] of [
      [NS_RESPONDER, IF_RESPONDER, '10.251.77.1/24', 'fd00:5b:77::1/64'],
      [NS_CLIENT, IF_CLIENT, '10.251.77.2/24', 'fd00:5b:77::2/64'],
    ]) {
      sh(inNs(ns, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv4.conf.all.arp_accept=1', 'net.ipv4.conf.default.arp_accept=1'));
      sh(inNs(ns, 'ip', 'link', 'set', 'lo', 'up'));
      sh(inNs(ns, 'ip', 'addr', 'add', v4, 'dev', ifname));
      sh(inNs(ns, 'ip', '-6', 'addr', 'add', v6, 'dev', ifname, 'nodad'));
      sh(inNs(ns, 'ip', 'link', 'set', ifname, 'up'));
    }

    // arping needs a route to pick its source address for the off-subnet address.
    sh(inNs(NS_CLIENT, 'ip', 'route', 'add', '10.252.0.0/24', 'dev', IF_CLIENT));

    work = mkdtempSync(join(tmpdir(), 'sb-responder-'));
    symlinkSync(join(repo, 'node_modules'), join(work, 'node_modules'));
    writeFileSync(join(work, 'package.json'), '{"type":"module"}\n');
    transpileClosure(join(repo, 'testing/standalone-responder.ts'), work);
    transpileClosure(join(repo, 'testing/probe-counter.ts'), work);
    const script = join(work, 'testing/standalone-responder.js');
    responder = spawn('ip', inNs(NS_RESPONDER, process.execPath, script, IF_RESPONDER, VIP4, VIP6, OFF_SUBNET_VIP).slice(1), {
      env: { ...process.env, SWITCHBOARD_RAWSOCK_ADDON: addonPath() },
    });
    let stderr = '';
    responder.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolveReady, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error(`responder not ready: ${stderr}`)), 15_000);
      responder?.stdout.on('data', (d: Buffer) => {
        buffered += d.toString();
        const parts = buffered.split('\n');
        buffered = parts.pop() ?? '';
        for (const line of parts) {
          const event = JSON.parse(line) as Record<string, unknown>;
          lines.push(event);
          if (event.event === 'ready') {
            responderMac = String(event.mac);
            clearTimeout(timer);
            resolveReady();
          }
        }
      });
      responder?.on('exit', (code) => reject(new Error(`responder exited with ${code}: ${stderr}`)));
    });
  }, 240_000);

  afterAll(() => {
    responder?.kill('SIGTERM');
    sh(['ip', 'netns', 'del', NS_RESPONDER], true);
    sh(['ip', 'netns', 'del', NS_CLIENT], true);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const replies = (target: string): number => lines.filter((l) => l.event === 'reply' && l.target === target).length;
  /** The tools run synchronously; give the responder's log lines time to arrive. */
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));

  it('announces on takeover: the client learns the address from the gratuitous ARP alone', () => {
    expect(responderMac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(sh(inNs(NS_CLIENT, 'ip', 'neigh', 'show', VIP4, 'dev', IF_CLIENT))).toContain(`lladdr ${responderMac}`);
  });

  it('answers arping with exactly one reply per request, from the interface MAC', async () => {
    const out = sh(inNs(NS_CLIENT, 'arping', '-c', '3', '-I', IF_CLIENT, VIP4));
    const unicast = out.split('\n').filter((l) => l.startsWith('Unicast reply from'));
    expect(unicast).toHaveLength(3);
    for (const l of unicast) expect(l).toContain(`${VIP4} [${responderMac.toUpperCase()}]`);
    expect(out).toContain('Received 3 response(s)');
    await settle();
    expect(replies(VIP4)).toBe(3);
  }, 30_000);

  it('answers ndisc6 with exactly one advertisement carrying the interface MAC', async () => {
    const out = sh(inNs(NS_CLIENT, 'ndisc6', '-n', '-m', '-r', '1', '-w', '1500', VIP6, IF_CLIENT));
    const answers = out.split('\n').filter((l) => l.includes('Target link-layer address'));
    expect(answers).toEqual([`Target link-layer address: ${responderMac.toUpperCase()}`]);
    await settle();
    expect(replies(VIP6)).toBe(1);
  }, 30_000);

  it('stays silent for an address outside the interface subnets, and says why', async () => {
    const out = sh(inNs(NS_CLIENT, 'arping', '-c', '1', '-w', '1', '-I', IF_CLIENT, OFF_SUBNET_VIP), true);
    expect(out).toContain('Received 0 response(s)');
    await settle();
    expect(lines).toContainEqual({ event: 'ignore', reason: 'OutsideInterfaceSubnets', detail: `${OFF_SUBNET_VIP} is in none of the subnets of ${IF_RESPONDER}` });
  }, 30_000);

  it("the prober's BPF filters: of the ARP and IPv6 frames the interface receives, only those that claim an address wake it", async () => {
    // The speaker's Prober in the responder's namespace, counting what its sockets deliver, beside unfiltered sockets.
    const counter = spawn('ip', inNs(NS_RESPONDER, process.execPath, join(work, 'testing/probe-counter.js'), IF_RESPONDER, '10.251.77.1/24', 'fd00:5b:77::1/64').slice(1), {
      env: { ...process.env, SWITCHBOARD_RAWSOCK_ADDON: addonPath() },
    });
    const events: Record<string, unknown>[] = [];
    let buffered = '';
    counter.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts) events.push(JSON.parse(line) as Record<string, unknown>);
    });
    const next = async (event: string): Promise<Record<string, unknown>> => {
      for (let waited = 0; waited < 15_000; waited += 20) {
        const i = events.findIndex((e) => e.event === event);
        if (i >= 0) return events.splice(i, 1)[0];
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`probe counter: no ${event} event`);
    };
    try {
      await next('ready');
      const clientMac = sh(inNs(NS_CLIENT, 'cat', `/sys/class/net/${IF_CLIENT}/address`)).trim();
      // Background: ARP requests for ten absent neighbours (2 each), 40 UDP datagrams to the responder over IPv6 (and
      // the client's solicitation first); and frames that claim an address: gratuitous ARP requests (-U) and replies
      // (-A) for the client's own address.
      const absent = Array.from({ length: 10 }, (_, i) => `arping -c 2 -w 3 -I ${IF_CLIENT} 10.251.77.${50 + i} >/dev/null &`).join(' ');
      const udp = `const s = require('dgram').createSocket('udp6'); let n = 0; const t = setInterval(() => { s.send('x', 9, 'fd00:5b:77::1'); if (++n === 40) { clearInterval(t); setTimeout(() => s.close(), 100); } }, 10);`;
      const traffic = [
        absent,
        `${process.execPath} -e "${udp}" &`,
        `arping -U -c 3 -w 4 -I ${IF_CLIENT} 10.251.77.2 >/dev/null &`,
        `arping -A -c 3 -w 4 -I ${IF_CLIENT} 10.251.77.2 >/dev/null &`,
        'wait',
      ].join(' ');
      sh(inNs(NS_CLIENT, 'sh', '-c', traffic), true);
      // The self-check still hears the holder: the client's kernel answers the ARP probe and the solicitation.
      counter.stdin.write('probe 10.251.77.2\n');
      expect(await next('probed')).toEqual({ event: 'probed', address: '10.251.77.2', macs: [clientMac] });
      counter.stdin.write('probe fd00:5b:77::2\n');
      expect(await next('probed')).toEqual({ event: 'probed', address: 'fd00:5b:77::2', macs: [clientMac] });
      await settle();
      counter.stdin.write('report\n');
      const report = (await next('report')) as unknown as Record<'prober' | 'all' | 'claiming', { arp: number; ipv6: number }>;
      process.stderr.write(`[raw-socket] prober filters: ARP ${report.prober.arp} delivered of ${report.all.arp} received; IPv6 ${report.prober.ipv6} of ${report.all.ipv6}\n`);
      expect(report.prober).toEqual(report.claiming);
      // 3 + 3 gratuitous frames and the probe's reply; 1 advertisement at least.
      expect(report.claiming.arp).toBeGreaterThanOrEqual(7);
      expect(report.claiming.ipv6).toBeGreaterThanOrEqual(1);
      expect(report.all.arp - report.claiming.arp).toBeGreaterThanOrEqual(20);
      expect(report.all.ipv6 - report.claiming.ipv6).toBeGreaterThanOrEqual(40);
    } finally {
      counter.kill('SIGTERM');
    }
  }, 60_000);

  it('answers again after its interface goes down and up at once: the socket error (ENETDOWN) is reported and cleared, not left to stop the socket', async () => {
    // Too quick for the speaker's link check (LINK_CHECK_MS) to reopen anything: the same sockets must read on.
    sh(['sh', '-c', `ip -n ${NS_RESPONDER} link set ${IF_RESPONDER} down && ip -n ${NS_RESPONDER} link set ${IF_RESPONDER} up`]);
    // Down flushed the IPv6 address (keep_addr_on_down is off); the solicitation's answer does not need it, ndisc6's route does.
    sh(['ip', '-n', NS_RESPONDER, '-6', 'addr', 'replace', 'fd00:5b:77::1/64', 'dev', IF_RESPONDER, 'nodad']);
    await settle();
    const errors = lines.filter((l) => l.event === 'socket-error').sort((a, b) => String(a.protocol).localeCompare(String(b.protocol)));
    expect(errors).toEqual(['arp', 'ipv6'].map((protocol) => ({ event: 'socket-error', protocol, message: 'Network is down', errno: 100, resumed: true })));
    const v4 = replies(VIP4);
    const v6 = replies(VIP6);
    const arping = sh(inNs(NS_CLIENT, 'arping', '-c', '3', '-w', '5', '-I', IF_CLIENT, VIP4), true);
    expect(arping).toContain('Received 3 response(s)');
    const ndisc = sh(inNs(NS_CLIENT, 'ndisc6', '-n', '-m', '-r', '3', '-w', '1500', VIP6, IF_CLIENT), true);
    expect(ndisc).toContain(`Target link-layer address: ${responderMac.toUpperCase()}`);
    await settle();
    expect({ arp: replies(VIP4) - v4, ndp: replies(VIP6) - v6 > 0 }).toEqual({ arp: 3, ndp: true });
  }, 30_000);

  it('keeps the neighbor-solicitation filter to whole instructions', () => {
    expect(NEIGHBOR_SOLICITATION_FILTER.length % 8).toBe(0);
  });
});
