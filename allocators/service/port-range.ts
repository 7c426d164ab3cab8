// NodePort ranges (`--service-node-port-range`): parsing as kube-apiserver does, membership, bands, pick order.
//
// NodePorts are keyed by number alone: one allocation covers TCP, UDP and SCTP alike (spec §4).
import {
  type Band,
  type BandedRange,
  type RandomBelow,
  NODE_PORT_BAND_RULE,
  bandOfOffset,
  cryptoRandomBelow,
  dynamicPickOrder,
  staticBandSize,
} from './bands.js';
import { goQuote } from '../../api/go-text.js';

export const DEFAULT_SERVICE_NODE_PORT_RANGE = '30000-32767';
const MAX_PORT = 65535;

export interface PortRange {
  readonly base: number;
  readonly size: number;
}

export interface NodePortRange extends PortRange {
  /** KEP-3668 lower band: [base, base+staticSize) is left for requested ports. */
  readonly staticSize: number;
}

/**
 * k8s.io/apimachinery's PortRange.Set: "30000-32767", "30000+2767" (base plus offset) or "30000"; "" is the empty
 * range. Throws with the same messages (pflag then prefixes `invalid argument "…" for "--service-node-port-range"`).
 */
export function parsePortRange(text: string): PortRange {
  const value = text.trim();
  if (value === '') return { base: 0, size: 0 };
  const hyphen = value.indexOf('-');
  const plus = value.indexOf('+');
  if (hyphen !== -1 && plus !== -1) throw new Error(`unable to parse port range: ${value}`);

  let low: number;
  let high: number;
  if (hyphen !== -1) {
    low = goAtoi(value.slice(0, hyphen));
    high = goAtoi(value.slice(hyphen + 1));
  } else if (plus !== -1) {
    low = goAtoi(value.slice(0, plus));
    high = low + goAtoi(value.slice(plus + 1));
  } else {
    low = high = goAtoi(value);
  }
  if (low > MAX_PORT || high > MAX_PORT) throw new Error(`the port range cannot be greater than 65535: ${value}`);
  if (high < low) throw new Error(`end port cannot be less than start port: ${value}`);
  return { base: low, size: 1 + high - low };
}

/** Go's strconv.Atoi, error texts included. */
function goAtoi(text: string): number {
  if (!/^[+-]?[0-9]+$/.test(text)) throw new Error(`strconv.Atoi: parsing ${goQuote(text)}: invalid syntax`);
  const value = BigInt(text);
  if (value > 2n ** 63n - 1n || value < -(2n ** 63n)) {
    throw new Error(`strconv.Atoi: parsing ${goQuote(text)}: value out of range`);
  }
  return Number(value);
}

/** The range the apiserver allocates from: an empty flag falls back to the default 30000-32767. */
export function nodePortRange(flag: string = DEFAULT_SERVICE_NODE_PORT_RANGE): NodePortRange {
  const parsed = parsePortRange(flag);
  const range = parsed.size === 0 ? parsePortRange(DEFAULT_SERVICE_NODE_PORT_RANGE) : parsed;
  return { ...range, staticSize: Number(staticBandSize(BigInt(range.size), NODE_PORT_BAND_RULE)) };
}

/** "base-end" as upstream prints a range in errors and events; "" for the empty range. */
export function formatPortRange(range: PortRange): string {
  return range.size === 0 ? '' : `${range.base}-${range.base + range.size - 1}`;
}

export function portInRange(range: PortRange, port: number): boolean {
  return Number.isInteger(port) && port >= range.base && port - range.base < range.size;
}

function banded(range: NodePortRange): BandedRange {
  return { size: BigInt(range.size), staticSize: BigInt(range.staticSize) };
}

export function bandOfPort(range: NodePortRange, port: number): Band | undefined {
  return portInRange(range, port) ? bandOfOffset(banded(range), BigInt(port - range.base)) : undefined;
}

/** Candidate ports for a dynamic pick, in upstream's order (upper band from a random start, then lower). */
export function* dynamicPortCandidates(range: NodePortRange, random: RandomBelow = cryptoRandomBelow): Generator<number> {
  for (const offset of dynamicPickOrder(banded(range), random)) yield range.base + Number(offset);
}
