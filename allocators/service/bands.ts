// Static/dynamic band split shared by ClusterIP (KEP-3070) and NodePort (KEP-3668) allocation.
//
// A range is a run of offsets [0, size). The first `staticSize` offsets form the static (lower) band: any value
// may be requested there, but dynamic picks go there only once the dynamic (upper) band is full. This keeps the
// low values that operators hand out by hand (kubernetes.default at .1, kube-dns at .10) mostly free.
import { randomBytes } from 'node:crypto';

/** `min(max(min, size/step), max)`, and 0 (no split) when size <= min. */
export interface BandRule {
  readonly min: bigint;
  readonly step: bigint;
  readonly max: bigint;
}

/** ClusterIP rule; its size counts network and broadcast addresses (2^hostbits). */
export const SERVICE_IP_BAND_RULE: BandRule = { min: 16n, step: 16n, max: 256n };
/** NodePort rule; its size is the number of ports in the range. */
export const NODE_PORT_BAND_RULE: BandRule = { min: 16n, step: 32n, max: 128n };

export function staticBandSize(formulaSize: bigint, rule: BandRule): bigint {
  if (formulaSize <= rule.min) return 0n;
  const scaled = formulaSize / rule.step;
  if (scaled < rule.min) return rule.min;
  if (scaled > rule.max) return rule.max;
  return scaled;
}

/** Offsets [0, size) of which [0, staticSize) are the static band. */
export interface BandedRange {
  readonly size: bigint;
  readonly staticSize: bigint;
}

export type Band = 'static' | 'dynamic';

export function bandOfOffset(range: BandedRange, offset: bigint): Band | undefined {
  if (offset < 0n || offset >= range.size) return undefined;
  return offset < range.staticSize ? 'static' : 'dynamic';
}

/** Returns a uniformly distributed integer in [0, bound); bound is always > 0. Injected so tests are deterministic. */
export type RandomBelow = (bound: bigint) => bigint;

/** Rejection sampling over crypto-random bytes, so even 2^64-sized IPv6 bands are uniform. */
export const cryptoRandomBelow: RandomBelow = (bound) => {
  if (bound <= 0n) throw new RangeError(`random bound must be positive, got ${bound}`);
  const bits = bound.toString(2).length;
  const bytes = Math.ceil(bits / 8);
  const excessBits = BigInt(bytes * 8 - bits);
  for (;;) {
    const candidate = BigInt(`0x${randomBytes(bytes).toString('hex')}`) >> excessBits;
    if (candidate < bound) return candidate;
  }
};

/**
 * A deterministic RandomBelow for tests and reproducible benchmarks: answers from the list in turn (each taken
 * modulo the bound, 0 once the list is used up) and records the bounds it was asked for.
 */
export function scriptedRandom(...answers: bigint[]): RandomBelow & { readonly bounds: bigint[] } {
  const bounds: bigint[] = [];
  const queue = [...answers];
  const random: RandomBelow = (bound) => {
    bounds.push(bound);
    return (queue.shift() ?? 0n) % bound;
  };
  return Object.assign(random, { bounds });
}

/**
 * The order upstream tries offsets when no value was requested: from a random start inside the dynamic band,
 * linearly with wrap-around through that band; then, only if the caller is still asking, from a random start
 * inside the static band with wrap-around. Lazy: a /64 yields one offset at a time, and the static band's random
 * start is drawn only once the dynamic band has been exhausted (upstream draws it at the same point).
 */
export function* dynamicPickOrder(range: BandedRange, random: RandomBelow = cryptoRandomBelow): Generator<bigint> {
  yield* wrapAround(range.staticSize, range.size - range.staticSize, random);
  yield* wrapAround(0n, range.staticSize, random);
}

function* wrapAround(first: bigint, length: bigint, random: RandomBelow): Generator<bigint> {
  if (length <= 0n) return;
  const start = random(length);
  for (let i = 0n; i < length; i++) yield first + ((start + i) % length);
}
