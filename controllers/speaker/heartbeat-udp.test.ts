// Two heartbeat rings over real UDP sockets on 127.0.0.1 (ephemeral ports, nothing leaves the host): they hear and
// ack each other, and when one stops the other reports it silent and is no longer acked. Real timers, so the waits
// are bounds (generous for a loaded machine), not measurements.
import { afterEach, describe, expect, it } from '@jest/globals';
import { silentLogger } from '../runtime/log.js';
import { telemetry } from '../runtime/telemetry.js';
import { HeartbeatRing, formatHeartbeatEndpoint, openUdpTransport, parseHeartbeatEndpoint, type HeartbeatPeer, type UdpHeartbeatTransport } from './heartbeat.js';

const INTERVAL = 50;

async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The heartbeat counters' data points now, by name and attributes. */
async function heartbeatMetrics(): Promise<Map<string, number>> {
  const { resourceMetrics } = await telemetry().exporter.collect();
  const points = new Map<string, number>();
  for (const scope of resourceMetrics.scopeMetrics)
    for (const metric of scope.metrics)
      if (metric.descriptor.name.startsWith('switchboard_speaker_heartbeats_'))
        for (const point of metric.dataPoints) points.set(`${metric.descriptor.name}${JSON.stringify(point.attributes)}`, Number(point.value));
  return points;
}

describe('heartbeat ring over UDP on loopback', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  async function node(name: string) {
    const silent: string[][] = [];
    const acked: boolean[] = [];
    let ring: HeartbeatRing | undefined;
    const transport: UdpHeartbeatTransport = await openUdpTransport('127.0.0.1', 0, (d) => ring?.receive(d), silentLogger);
    ring = new HeartbeatRing({
      node: name,
      intervalMs: INTERVAL,
      // Wide margins: this tests the sockets, not the timing (heartbeat.test.ts does, on a fake clock).
      deadAfterMs: 20 * INTERVAL,
      ackTimeoutMs: 10 * INTERVAL,
      transport,
      log: silentLogger,
      onSilent: (nodes) => silent.push(nodes),
      onAckedChange: (a) => acked.push(a),
    });
    const r = ring;
    cleanup.push(() => {
      r.stop();
      transport.close();
    });
    return { ring: r, transport, silent, acked };
  }

  it('two rings hear and ack each other; when one stops, the other reports it silent and is not acked', async () => {
    const a = await node('a');
    const b = await node('b');
    expect(a.transport.port).toBeGreaterThan(0);
    expect(b.transport.port).not.toBe(a.transport.port);
    const peers: HeartbeatPeer[] = [a, b].map(({ ring, transport }) => ({
      node: ring === a.ring ? 'a' : 'b',
      ...(parseHeartbeatEndpoint(formatHeartbeatEndpoint('127.0.0.1', transport.port)) ?? { address: '', port: 0 }),
      judged: true,
    }));
    a.ring.setPeers(peers);
    b.ring.setPeers(peers);
    a.ring.start();
    b.ring.start();
    await until('each has received 20 datagrams', () => a.ring.stats.received >= 20 && b.ring.stats.received >= 20);
    expect([a.ring.acked(), b.ring.acked(), a.ring.silent(), b.ring.silent()]).toEqual([true, true, [], []]);
    expect([a.ring.stats.rejected, b.ring.stats.rejected]).toEqual([0, 0]);

    b.ring.stop();
    b.transport.close();
    await until('a reports b silent', () => a.silent.some((s) => s.join() === 'b'));
    await until('a is not acked', () => a.acked.includes(false));
    expect(a.ring.silent()).toEqual(['b']);
    expect(a.ring.acked()).toBe(false);

    // The counters (observed from stats when collected; b stopped, so only a's are left): a junk datagram counts as
    // rejected, malformed.
    a.transport.send(Buffer.from('junk'), '127.0.0.1', a.transport.port);
    await until('a rejected the junk', () => a.ring.stats.rejected === 1);
    const stats = { ...a.ring.stats };
    const points = await heartbeatMetrics();
    expect(points.get('switchboard_speaker_heartbeats_rejected{"reason":"malformed"}')).toBe(1);
    expect(points.get('switchboard_speaker_heartbeats_received{}')).toBeGreaterThanOrEqual(stats.received);
    expect(points.get('switchboard_speaker_heartbeats_sent{}')).toBeGreaterThanOrEqual(stats.sent);
  });

  it('binds udp6 for an IPv6 address, and refuses a port already bound', async () => {
    // Only where the host has ::1 (it has on the CI and dev machines; a host without IPv6 skips this half).
    const v6 = await openUdpTransport('::1', 0, () => {}, silentLogger).catch(() => undefined);
    if (v6) {
      cleanup.push(() => v6.close());
      const got: Buffer[] = [];
      const other = await openUdpTransport('::1', 0, (d) => got.push(d), silentLogger);
      cleanup.push(() => other.close());
      v6.send(Buffer.from('hello'), '::1', other.port);
      await until('the datagram arrived', () => got.length > 0);
      expect(got[0].toString()).toBe('hello');
    }
    const first = await openUdpTransport('127.0.0.1', 0, () => {}, silentLogger);
    cleanup.push(() => first.close());
    await expect(openUdpTransport('127.0.0.1', first.port, () => {}, silentLogger)).rejects.toThrow(/EADDRINUSE/);
    first.close();
    first.close(); // twice is harmless, and so is a send after it
    first.send(Buffer.from('x'), '127.0.0.1', 9);
  });
});
