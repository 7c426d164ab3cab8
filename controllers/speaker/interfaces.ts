// Which of the node's interfaces the speaker answers on. Read from /sys/class/net (flags, carrier, type, master, MAC)
// and os.networkInterfaces() (addresses); the choice itself is pure. Skipped, each with its reason: interfaces that
// are down or have no carrier (a cable pulled, a switch port down: MetalLB #2026 announces from such a node), not
// Ethernet, NOARP, ports of a bridge or bond (the bridge/bond answers instead: MetalLB #316), or matching an exclude
// pattern (MetalLB's defaults: container, CNI and tunnel devices).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_EXCLUDE_PATTERNS = [
  '^docker.*',
  '^cbr.*',
  '^dummy.*',
  '^virbr.*',
  '^lxcbr.*',
  '^veth.*',
  '^lo$',
  '^cali.*',
  '^tunl.*',
  '^flannel.*',
  '^kube-ipvs.*',
  '^cni.*',
  '^nodelocaldns.*',
  '^lxc.*',
];

const IFF_UP = 0x1;
const IFF_BROADCAST = 0x2;
const IFF_NOARP = 0x80;
const ARPHRD_ETHER = 1;

export interface SystemInterface {
  name: string;
  /** /sys/class/net/<name>/flags. */
  flags: number;
  /** /sys/class/net/<name>/carrier; undefined when the kernel does not say (an interface that is down). */
  carrier?: boolean;
  /** ARPHRD type (1 = Ethernet). */
  type: number;
  /** Set when the interface is a port of a bridge or bond. */
  master?: string;
  mac: string;
  /** Addresses as address/prefix-length. */
  cidrs: string[];
}

export interface InterfaceChoice {
  eligible: SystemInterface[];
  skipped: { name: string; reason: string }[];
}

export interface InterfaceSelection {
  /** Exact names to use; empty means every interface not excluded. */
  include: readonly string[];
  exclude: readonly RegExp[];
}

/** Why the speaker does not answer on an interface, or undefined when it does. */
function skipReason(i: SystemInterface, selection: InterfaceSelection): string | undefined {
  if (selection.include.length > 0 && !selection.include.includes(i.name)) return 'not in --interfaces';
  if (selection.include.length === 0 && selection.exclude.some((re) => re.test(i.name))) return 'matches an exclude pattern';
  if ((i.flags & IFF_UP) === 0) return 'down';
  if (i.carrier === false) return 'no carrier';
  if (i.type !== ARPHRD_ETHER) return 'not Ethernet';
  if ((i.flags & IFF_NOARP) !== 0 || (i.flags & IFF_BROADCAST) === 0) return 'NOARP or no broadcast';
  if (i.master) return `port of ${i.master} (answers there)`;
  return undefined;
}

/** Pure: the interfaces to answer on, and why each other one is not used. */
export function chooseInterfaces(all: readonly SystemInterface[], selection: InterfaceSelection): InterfaceChoice {
  const eligible: SystemInterface[] = [];
  const skipped: InterfaceChoice['skipped'] = [];
  for (const i of [...all].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const reason = skipReason(i, selection);
    if (reason) skipped.push({ name: i.name, reason });
    else eligible.push(i);
  }
  return { eligible, skipped };
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

function carrierOf(dir: string): boolean | undefined {
  const text = readText(join(dir, 'carrier'));
  return text === '1' ? true : text === '0' ? false : undefined;
}

/**
 * What of an interface's link can change in an instant (flags and carrier), for a cheap frequent check of the
 * interfaces in use; the full scan (addresses, new interfaces) runs less often.
 */
export function linkState(name: string, sysNet = '/sys/class/net'): string {
  const dir = join(sysNet, name);
  return `${readText(join(dir, 'flags')) ?? 'gone'}/${readText(join(dir, 'carrier')) ?? '?'}`;
}

/** The interfaces of the current network namespace. */
export function readSystemInterfaces(sysNet = '/sys/class/net'): SystemInterface[] {
  const addresses = networkInterfaces();
  let names: string[];
  try {
    names = readdirSync(sysNet);
  } catch {
    names = Object.keys(addresses);
  }
  return names.map((name) => {
    const dir = join(sysNet, name);
    const masterLink = join(dir, 'master');
    return {
      name,
      flags: Number.parseInt(readText(join(dir, 'flags')) ?? '0', 16),
      carrier: carrierOf(dir),
      type: Number(readText(join(dir, 'type')) ?? ARPHRD_ETHER),
      master: existsSync(masterLink) ? (readText(join(masterLink, 'uevent'))?.match(/INTERFACE=(\S+)/)?.[1] ?? 'a master') : undefined,
      mac: readText(join(dir, 'address')) ?? '',
      cidrs: (addresses[name] ?? []).flatMap((a) => (a.cidr && !a.internal ? [a.cidr] : [])),
    };
  });
}

/** "eth0,eth1" → names; "" → []. */
export const parseNameList = (text: string): string[] =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
