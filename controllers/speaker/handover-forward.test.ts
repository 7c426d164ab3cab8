// The handover forwarding tables: what they say, when they open and close, and (as root, in a namespace this test
// makes) that the kernel takes them. Forwarding itself, with traffic, is tested in e2e/dataplane/handover.int.test.ts.
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { silentLogger } from '../runtime/log.js';
import { FORWARD_GRACE_MS, HandoverForwarder, forwardScript, forwardTableName, forwardedPackets, macFor, runNft, type ForwardWindow, type NftRunner } from './handover-forward.js';

const V4: ForwardWindow = { address: '192.0.2.220', oldMac: '02:00:00:00:00:01', interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:02' }] };
const V6: ForwardWindow = { address: '2001:db8::220', oldMac: '02:00:00:00:00:01', interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:02' }, { name: 'eth1', mac: '02:00:00:00:00:03' }] };

describe('handover forwarding tables', () => {
  it('one table per address, named from it', () => {
    expect(forwardTableName('192.0.2.220')).toBe('switchboard_handover_192_0_2_220');
    expect(forwardTableName('2001:db8::220')).toBe('switchboard_handover_2001_db8__220');
  });

  it('records flows that start here and forwards the others to the old MAC, per interface, replacing any table of the same name', () => {
    const script = forwardScript(V6);
    expect(script.split('\n').slice(0, 3)).toEqual(['table netdev switchboard_handover_2001_db8__220 {}', 'delete table netdev switchboard_handover_2001_db8__220', 'table netdev switchboard_handover_2001_db8__220 {']);
    expect(script).toContain('set started { type ipv6_addr . inet_service;');
    expect(script).toContain('type filter hook ingress device "eth1" priority -500;');
    expect(script).toContain('ether daddr 02:00:00:00:00:03 ip6 daddr 2001:db8::220 tcp flags & (syn | ack) == syn add @started { ip6 saddr . tcp sport } accept');
    expect(script).toContain(
      'ether daddr 02:00:00:00:00:03 ip6 daddr 2001:db8::220 meta l4proto tcp ip6 saddr . tcp sport != @started counter ether saddr set 02:00:00:00:00:03 ether daddr set 02:00:00:00:00:01 fwd to "eth1"',
    );
    expect(forwardScript(V4)).toContain('ip saddr . tcp sport != @started');
  });

  it("picks the old node's MAC on the address's subnet, and none when that is ambiguous or unknown", () => {
    const lan = { name: 'eth0', cidrs: ['192.0.2.11/24'], mac: 'aa:aa:aa:aa:aa:01' };
    const other = { name: 'eth1', cidrs: ['198.51.100.11/24'], mac: 'aa:aa:aa:aa:aa:02' };
    expect(macFor('192.0.2.220', [other, lan])).toBe('aa:aa:aa:aa:aa:01');
    expect(macFor('203.0.113.1', [other, lan])).toBeUndefined();
    expect(macFor('192.0.2.220', [lan, { ...other, cidrs: ['0.0.0.0/0'] }])).toBeUndefined();
    expect(macFor('192.0.2.220', [{ ...lan, mac: undefined }])).toBeUndefined();
  });

  it('reads the forwarded packets from the counters', () => {
    expect(forwardedPackets('chain ingress0 {\n ... counter packets 3 bytes 180 ether saddr ...\n}\nchain ingress1 {\n counter packets 2 bytes 9 ...\n}')).toBe(5);
  });
});

describe('HandoverForwarder', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  /** A runner that records scripts and resolves each call when told. */
  function fakeNft() {
    const calls: { args: readonly string[]; stdin?: string; resolve: (out: string) => void; reject: (err: Error) => void }[] = [];
    const run: NftRunner = (args, stdin) => new Promise((resolve, reject) => calls.push({ args, stdin, resolve, reject }));
    return { calls, run };
  }
  const flush = () => new Promise((r) => setImmediate(r));

  /** Fake timers, and a forwarder whose window for V4 has opened. */
  async function withV4Open() {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    const nft = fakeNft();
    const f = new HandoverForwarder({ log: silentLogger, run: nft.run, onReady: () => undefined });
    f.sync([V4]);
    nft.calls[0].resolve('');
    await flush();
    return { nft, f };
  }

  it('an address is answerable once its table is in place; the table goes FORWARD_GRACE_MS after the window is no longer wanted', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    const nft = fakeNft();
    let ready = 0;
    const f = new HandoverForwarder({ log: silentLogger, run: nft.run, onReady: () => ready++ });
    f.sync([V4]);
    expect(f.ready(V4.address)).toBe(false);
    expect(nft.calls.map((c) => c.args)).toEqual([['-f', '-']]);
    expect(nft.calls[0].stdin).toBe(forwardScript(V4));
    nft.calls[0].resolve('');
    await flush();
    expect({ ready: f.ready(V4.address), onReady: ready }).toEqual({ ready: true, onReady: 1 });
    f.sync([V4]); // an election pass that still wants it: nothing runs
    f.sync([]);
    jest.advanceTimersByTime(FORWARD_GRACE_MS - 1);
    f.sync([V4]); // wanted again within the grace: it stays
    jest.advanceTimersByTime(FORWARD_GRACE_MS);
    expect(nft.calls).toHaveLength(1);
    f.sync([]);
    jest.advanceTimersByTime(FORWARD_GRACE_MS);
    await flush();
    expect(nft.calls[1].args).toEqual(['list', 'table', 'netdev', 'switchboard_handover_192_0_2_220']);
    nft.calls[1].resolve('counter packets 4 bytes 240');
    await flush();
    expect(nft.calls[2].args).toEqual(['delete', 'table', 'netdev', 'switchboard_handover_192_0_2_220']);
    nft.calls[2].resolve('');
    await flush();
    expect(f.ready(V4.address)).toBe(false);
  });

  it('a window wanted again while its close is still running gets its table after the deletion, and is answerable only then', async () => {
    const { nft, f } = await withV4Open();
    f.sync([]);
    jest.advanceTimersByTime(FORWARD_GRACE_MS);
    await flush();
    expect(nft.calls[1].args).toEqual(['list', 'table', 'netdev', 'switchboard_handover_192_0_2_220']);
    f.sync([V4]); // the next handover of the address, while the close lists the old table
    await flush();
    expect(nft.calls).toHaveLength(2);
    nft.calls[1].resolve('counter packets 0 bytes 0');
    await flush();
    expect(nft.calls[2].args).toEqual(['delete', 'table', 'netdev', 'switchboard_handover_192_0_2_220']);
    expect(f.ready(V4.address)).toBe(false);
    nft.calls[2].resolve('');
    await flush();
    expect(nft.calls.slice(3).map((c) => [c.args, c.stdin])).toEqual([[['-f', '-'], forwardScript(V4)]]);
    expect(f.ready(V4.address)).toBe(false);
    nft.calls[3].resolve('');
    await flush();
    expect(f.ready(V4.address)).toBe(true);
  });

  it('a window wanted within its grace for another old node is replaced: segments go on to that node', async () => {
    const { nft, f } = await withV4Open();
    f.sync([]);
    const other = { ...V4, oldMac: '02:00:00:00:00:09' };
    f.sync([other]);
    await flush();
    expect(nft.calls.slice(1).map((c) => [c.args, c.stdin])).toEqual([[['-f', '-'], forwardScript(other)]]);
    nft.calls[1].resolve('');
    await flush();
    jest.advanceTimersByTime(FORWARD_GRACE_MS);
    f.sync([{ ...other }]); // the same window again: nothing runs
    expect(nft.calls).toHaveLength(2);
  });

  it('without nft (or CAP_NET_ADMIN) it says why once and lets every address be answered', async () => {
    const nft = fakeNft();
    const warnings: unknown[] = [];
    const log = { ...silentLogger, warn: (msg: string, fields?: unknown) => warnings.push({ msg, fields }) };
    const f = new HandoverForwarder({ log, run: nft.run, onReady: () => undefined });
    f.sync([V4, V6]);
    nft.calls[0].reject(new Error('Operation not permitted'));
    nft.calls[1].reject(new Error('Operation not permitted'));
    await flush();
    f.sync([V4, V6, { ...V4, address: '192.0.2.221' }]);
    expect({ calls: nft.calls.length, warnings: warnings.length, ready: [V4.address, '192.0.2.221'].map((a) => f.ready(a)) }).toEqual({ calls: 2, warnings: 1, ready: [true, true] });
  });

  it('removes the tables a previous process left, and only those', async () => {
    const nft = fakeNft();
    const f = new HandoverForwarder({ log: silentLogger, run: nft.run, onReady: () => undefined });
    const removing = f.removeStale();
    nft.calls[0].resolve('table netdev switchboard_handover_192_0_2_220\ntable netdev kube-proxy\ntable netdev switchboard_handover_2001_db8__220\n');
    await flush();
    expect(nft.calls[1].stdin).toBe('delete table netdev switchboard_handover_192_0_2_220\ndelete table netdev switchboard_handover_2001_db8__220\n');
    nft.calls[1].resolve('');
    await removing;
  });
});

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return '`ip netns` is unavailable';
  if (spawnSync('sh', ['-c', 'command -v nft']).status !== 0) return 'nft is not installed';
  return undefined;
}
const skipReason = unavailable();

(skipReason ? describe.skip : describe)(`handover forwarding tables in the kernel${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const ns = `sbf-${randomBytes(3).toString('hex')}`;
  const inNs = (...cmd: string[]) => ['ip', 'netns', 'exec', ns, ...cmd];
  const sh = (cmd: string[]): string => {
    const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  // The speaker's runner, in the test's namespace.
  const run: NftRunner = async (args, stdin) => {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', ...args], { input: stdin, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    return r.stdout;
  };

  beforeAll(() => {
    sh(['ip', 'netns', 'add', ns]);
    sh(inNs('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1'));
  });
  afterAll(() => {
    spawnSync('ip', ['netns', 'del', ns]);
  });

  it("the speaker's runner rejects with nft's message when nft fails, even one that exits without reading its input", async () => {
    // Read-only or failing commands only: this runs in the test's own namespace.
    await expect(runNft(['--no-such-flag'], 'x'.repeat(1 << 20))).rejects.toThrow(/no-such-flag|unrecognized|invalid/i);
    await expect(runNft(['-c', '-f', '-'], 'this is not nft\n')).rejects.toThrow(/syntax error/);
    await expect(runNft(['list', 'tables', 'netdev'])).resolves.toEqual(expect.any(String));
  });

  it('loads both families, replaces a table of the same name, and removes them', async () => {
    let opened = 0;
    const f = new HandoverForwarder({ log: silentLogger, run, onReady: () => opened++ });
    f.sync([V4, V6]);
    await new Promise((r) => setTimeout(r, 100));
    expect({ opened, ready: [f.ready(V4.address), f.ready(V6.address)] }).toEqual({ opened: 2, ready: [true, true] });
    const tables = sh(inNs('nft', 'list', 'tables', 'netdev'));
    expect(tables).toContain(`table netdev ${forwardTableName(V4.address)}`);
    expect(tables).toContain(`table netdev ${forwardTableName(V6.address)}`);
    const listing = sh(inNs('nft', 'list', 'table', 'netdev', forwardTableName(V6.address)));
    expect(listing).toContain('fwd to "eth1"');
    expect(forwardedPackets(listing)).toBe(0);
    await run(['-f', '-'], forwardScript(V4)); // a second load of the same table replaces it
    expect(sh(inNs('nft', 'list', 'table', 'netdev', forwardTableName(V4.address))).match(/chain ingress/g)).toHaveLength(1);
    await f.closeAll();
    expect(sh(inNs('nft', 'list', 'tables', 'netdev'))).not.toContain('switchboard_handover_');
  });

  it('a window wanted again as its close begins keeps its table (the next handover of the address forwards)', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    try {
      const f = new HandoverForwarder({ log: silentLogger, run, onReady: () => undefined });
      const settle = async () => {
        for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      };
      f.sync([V4]);
      await settle();
      f.sync([]);
      jest.advanceTimersByTime(FORWARD_GRACE_MS); // the close begins
      f.sync([V4]);
      await settle();
      expect({ ready: f.ready(V4.address), tables: sh(inNs('nft', 'list', 'tables', 'netdev')) }).toEqual({ ready: true, tables: expect.stringContaining(`table netdev ${forwardTableName(V4.address)}`) });
      await f.closeAll();
      expect(sh(inNs('nft', 'list', 'tables', 'netdev'))).not.toContain('switchboard_handover_');
    } finally {
      jest.useRealTimers();
    }
  });
});
