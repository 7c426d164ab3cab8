// The parser and the responder face whatever arrives on the wire: they must never throw.
import { describe, expect, it } from '@jest/globals';
import { buildArp, parseFrame } from './frames.js';
import { KERNEL_MAC, vectors } from '../../testing/frame-vectors.js';
import { prng } from '../../testing/prng.js';
import { announcementTable, decide, responderInterface } from './responder.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20260101);
const ROUNDS = Number(process.env.FUZZ_ROUNDS ?? 20000);
const iface = responderInterface('eth0', KERNEL_MAC, ['10.250.77.5/24', 'fd00:5b::5/64']);
const table = announcementTable([['10.250.77.1'], ['fd00:5b::1'], ['fd00:5b::2'], ['10.250.77.2']]);
const seeds = Object.values(vectors).map((hex) => Buffer.from(hex, 'hex'));

function mutate(rand: () => number, base: Buffer): Buffer {
  const int = (n: number) => Math.floor(rand() * n);
  let b = Buffer.from(base);
  const edits = 1 + int(4);
  for (let i = 0; i < edits; i++) {
    switch (int(6)) {
      case 0: // flip a bit
        if (b.length > 0) b[int(b.length)] ^= 1 << int(8);
        break;
      case 1: // set a byte to a boundary value
        if (b.length > 0) b[int(b.length)] = [0, 1, 2, 0x7f, 0x80, 0xff, 58, 135, 136][int(9)];
        break;
      case 2: // truncate
        b = b.subarray(0, int(b.length + 1));
        break;
      case 3: // extend with random bytes
        b = Buffer.concat([b, Buffer.from(Array.from({ length: int(40) }, () => int(256)))]);
        break;
      case 4: // lie about the IPv6 payload length or an option length
        if (b.length > 20) b.writeUInt16BE(int(0x10000), 18);
        if (b.length > 79) b[79] = int(256);
        break;
      default: // random garbage with a chosen ethertype
        b = Buffer.from(Array.from({ length: int(120) }, () => int(256)));
        if (b.length >= 14) b.writeUInt16BE([0x0806, 0x86dd, 0x0800][int(3)], 12);
    }
  }
  return b;
}

describe('fuzzing the frame parser and the responder', () => {
  it(`never throws on ${ROUNDS} mutated and random frames (seed ${SEED})`, () => {
    const rand = prng(SEED);
    const outcomes = new Map<string, number>();
    for (let i = 0; i < ROUNDS; i++) {
      const frame = mutate(rand, seeds[i % seeds.length]);
      let parsed: ReturnType<typeof parseFrame>;
      try {
        parsed = parseFrame(frame);
        const d = decide(frame, iface, table);
        const key = d.action === 'reply' ? `reply:${d.protocol}` : d.reason;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      } catch (err) {
        throw new Error(`threw on frame ${frame.toString('hex')}: ${String(err)}`);
      }
      expect(typeof parsed.ok).toBe('boolean');
      // Whatever parses as ARP re-encodes to the same 42 bytes.
      if (parsed.ok && parsed.frame.kind === 'arp') {
        const { eth, arp } = parsed.frame;
        expect(buildArp({ ...arp, ethDst: eth.dst, ethSrc: eth.src }, { pad: false })).toEqual(frame.subarray(0, 42));
      }
    }
    if (process.env.FUZZ_REPORT) console.log(Object.fromEntries(outcomes));
    // The corpus exercises both answers and the interesting refusals, not only "Malformed".
    expect(outcomes.get('Malformed')).toBeGreaterThan(0);
    expect((outcomes.get('reply:arp') ?? 0) + (outcomes.get('reply:ndp') ?? 0)).toBeGreaterThan(0);
    expect(outcomes.size).toBeGreaterThanOrEqual(5);
  });

  it('never throws on non-buffers or empty input', () => {
    expect(parseFrame(new Uint8Array(0))).toMatchObject({ ok: false });
    // @ts-expect-error: callers in JS may hand over anything
    expect(parseFrame(undefined)).toEqual({ ok: false, error: 'not a byte buffer' });
    expect(decide(new Uint8Array(100), iface, table)).toMatchObject({ action: 'ignore', reason: 'Malformed' });
  });
});
