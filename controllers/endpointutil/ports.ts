// Service port checks, targetPort resolution against a pod (upstream FindPort) and order-free port-set keys.
import type { Pod, Service } from '../../api/wire.js';
import type { SkippedItem } from './report.js';
import type { ServicePort } from './types.js';

/** A port as both EndpointSlices and Endpoints carry it. */
export interface ResolvedPort {
  name: string;
  port: number;
  protocol: string;
  appProtocol?: string;
}

const PROTOCOLS = new Set(['TCP', 'UDP', 'SCTP']);
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function isPortNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

function portLabel(port: ServicePort, index: number): string {
  return port.name ? port.name : `#${index}`;
}

/** Why a Service port cannot be published, or undefined when it can. */
function servicePortProblem(port: ServicePort): string | undefined {
  if (!isPortNumber(port.port)) return `port ${String(port.port)} is not in 1..65535`;
  if (!PROTOCOLS.has(port.protocol ?? 'TCP')) return `protocol ${String(port.protocol)} is not TCP, UDP or SCTP`;
  const name = port.name ?? '';
  if (name !== '' && (name.length > 63 || !DNS1123_LABEL.test(name))) return `name "${name}" is not a DNS-1123 label`;
  const target = port.targetPort;
  // The apiserver defaults an absent (or 0) targetPort to the port itself.
  if (target === undefined || target === null || target === 0) return undefined;
  if (typeof target === 'number') return isPortNumber(target) ? undefined : `targetPort ${target} is not in 1..65535`;
  if (typeof target !== 'string' || target === '') return `targetPort ${JSON.stringify(target)} is neither a number nor a name`;
  // A numeric string is how some clients send an int-or-string; accept it as a number.
  if (/^\d+$/.test(target)) return isPortNumber(Number(target)) ? undefined : `targetPort ${target} is not in 1..65535`;
  return undefined;
}

/**
 * The Service ports that can be published. A port whose number, protocol, name or targetPort is unusable, or
 * whose name repeats an earlier port's (slice validation wants unique names), is left out and reported.
 */
export function usableServicePorts(service: Service): { ports: ServicePort[]; skipped: SkippedItem[] } {
  const ports: ServicePort[] = [];
  const skipped: SkippedItem[] = [];
  const seenNames = new Set<string>();
  (service.spec?.ports ?? []).forEach((port, index) => {
    const problem = servicePortProblem(port);
    if (problem) {
      skipped.push({ kind: 'ServicePort', name: portLabel(port, index), code: 'ServicePortInvalid', reason: problem });
      return;
    }
    const name = port.name ?? '';
    if (seenNames.has(name)) {
      const reason = `port name "${name}" is used by an earlier port of the Service`;
      skipped.push({ kind: 'ServicePort', name: portLabel(port, index), code: 'ServicePortCollision', reason });
      return;
    }
    seenNames.add(name);
    ports.push(port);
  });
  return { ports, skipped };
}

/**
 * The container port a Service port targets on this pod: a number as is; a name is looked up in the regular
 * containers, then in restartable (sidecar) init containers, matching name and protocol. Undefined if none.
 */
export function findTargetPort(pod: Pod, servicePort: ServicePort): number | undefined {
  const target = servicePort.targetPort;
  if (target === undefined || target === null || target === 0) return servicePort.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  const protocol = servicePort.protocol ?? 'TCP';
  const sidecars = (pod.spec?.initContainers ?? []).filter((container) => container.restartPolicy === 'Always');
  for (const container of [...(pod.spec?.containers ?? []), ...sidecars]) {
    for (const containerPort of container.ports ?? []) {
      if (containerPort.name === target && (containerPort.protocol ?? 'TCP') === protocol) {
        return containerPort.containerPort;
      }
    }
  }
  return undefined;
}

export function toResolvedPort(servicePort: ServicePort, portNumber: number): ResolvedPort {
  const resolved: ResolvedPort = {
    name: servicePort.name ?? '',
    port: portNumber,
    protocol: servicePort.protocol ?? 'TCP',
  };
  if (servicePort.appProtocol != null) resolved.appProtocol = servicePort.appProtocol;
  return resolved;
}

/**
 * The pod's ports for the given Service ports. A port whose named target the pod lacks is omitted (and reported),
 * which puts the pod into a different port group, as upstream.
 */
export function resolvePodPorts(pod: Pod, servicePorts: readonly ServicePort[], skipped: SkippedItem[]): ResolvedPort[] {
  const ports: ResolvedPort[] = [];
  for (const servicePort of servicePorts) {
    const portNumber = findTargetPort(pod, servicePort);
    if (portNumber !== undefined) {
      ports.push(toResolvedPort(servicePort, portNumber));
      continue;
    }
    const reason = `no container port matches targetPort ${String(servicePort.targetPort)} of port ${servicePort.name || servicePort.port}; port omitted for this pod`;
    skipped.push({ kind: 'Pod', name: pod.metadata?.name ?? '', code: 'PodPortNotFound', reason });
  }
  return ports;
}

interface PortLike {
  name?: string | null;
  port?: number | null;
  protocol?: string | null;
  appProtocol?: string | null;
}

/** Characters JSON.stringify escapes in a string (controls, quote, backslash, and lone surrogates since ES2019). */
const JSON_ESCAPED = /[\u0000-\u001f"\\\ud800-\udfff]/;

function jsonPlain(value: unknown): value is string {
  return typeof value === 'string' && !JSON_ESCAPED.test(value);
}

/**
 * Identity of one port; absent name and "" are the same, as are absent protocol and TCP. The JSON of
 * [name, port, protocol, appProtocol], built by hand when no field needs escaping: it is computed for every pod and
 * port on each sync, and JSON.stringify was about 7% of a 5,000-pod Service's sync (issue 13).
 */
export function portKey(port: PortLike): string {
  const name: unknown = port.name ?? '';
  const number: unknown = port.port ?? null;
  const protocol: unknown = port.protocol ?? 'TCP';
  const appProtocol: unknown = port.appProtocol ?? null;
  const plainNumber = number === null || (typeof number === 'number' && Number.isFinite(number));
  if (jsonPlain(name) && plainNumber && jsonPlain(protocol) && (appProtocol === null || jsonPlain(appProtocol))) {
    return `["${name}",${number === null ? 'null' : String(number)},"${protocol}",${appProtocol === null ? 'null' : `"${appProtocol}"`}]`;
  }
  return JSON.stringify([name, number, protocol, appProtocol]);
}

/** Identity of a port set regardless of order (upstream hashes the ports sorted by their own hashes). */
export function portSetKey(ports: readonly PortLike[] | null | undefined): string {
  return JSON.stringify((ports ?? []).map(portKey).sort());
}
