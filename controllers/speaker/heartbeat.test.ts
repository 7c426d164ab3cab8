import { describe, expect, it } from '@jest/globals';
import { silentLogger } from '../runtime/log.js';
import { HeartbeatRing, type HeartbeatPeer } from './heartbeat.js';

describe('smoke', () => {
  it('two rings hear each other', () => {
    let t = 0;
    const rings = new Map<string, HeartbeatRing>();
    const mk = (node: string) => {
      const r = new HeartbeatRing({ node, intervalMs: 150, now: () => t, log: silentLogger, onSilent: () => {}, onAckedChange: () => {}, transport: { send: (d, _a, port) => rings.get(String(port))?.receive(d), close: () => {} } });
      return r;
    };
    const peers: HeartbeatPeer[] = [{ node: 'a', address: '10.0.0.1', port: 1, judged: true }, { node: 'b', address: '10.0.0.2', port: 2, judged: true }];
    const a = mk('a'); const b = mk('b');
    rings.set('1', a); rings.set('2', b);
    a.setPeers(peers); b.setPeers(peers);
    for (let i = 0; i < 20; i++) { t += 150; a.tick(); b.tick(); }
    expect([a.acked(), b.acked(), a.silent(), b.silent(), a.stats.received]).toEqual([true, true, [], [], 20]);
  });
});
