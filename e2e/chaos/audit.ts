// A control plane of a chaos test's own whose kube-apiserver writes an audit log of every write, and that log read
// back: who wrote what and when, as the API server saw it. Replicas share one user, so they are told apart by
// their User-Agent (`switchboard-controller/<leader-election identity> (…)`).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalControlPlane } from '../../cmd/up/controlplane/controlplane.js';

/** Writes only, at Metadata level: reads and watches would drown them and prove nothing about fencing. */
const WRITES_POLICY = JSON.stringify({
  apiVersion: 'audit.k8s.io/v1',
  kind: 'Policy',
  omitStages: ['RequestReceived'],
  rules: [{ level: 'None', verbs: ['get', 'list', 'watch'] }, { level: 'Metadata' }],
});

interface AuditEvent {
  stage: string;
  verb: string;
  userAgent?: string;
  requestReceivedTimestamp: string;
  objectRef?: { resource?: string; namespace?: string; name?: string; subresource?: string };
  responseStatus?: { code?: number };
}

/** One write request as the API server logged it; `at` is when it received the request (ms since the epoch). */
export interface AuditedWrite {
  at: number;
  verb: string;
  userAgent: string;
  object: string;
  code: number;
}

export interface AuditedControlPlane {
  controlPlane: LocalControlPlane;
  /** Every write the API server has logged so far, in the order received. */
  writes(): Promise<AuditedWrite[]>;
  stop(): Promise<void>;
}

/** Starts etcd + kube-apiserver (no kube-controller-manager: nothing here needs one) with the audit log on. */
export async function startAuditedControlPlane(log: (line: string) => void): Promise<AuditedControlPlane> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-chaos-'));
  const policy = join(dir, 'audit-policy.json');
  const auditLog = join(dir, 'audit.log');
  await writeFile(policy, WRITES_POLICY);
  const controlPlane = new LocalControlPlane({ kubeControllerManager: false, extraApiServerArgs: [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog}`], log });
  try {
    await controlPlane.start();
  } catch (err) {
    await controlPlane.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    controlPlane,
    writes: async () =>
      (await readFile(auditLog, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AuditEvent)
        .filter((e) => e.stage === 'ResponseComplete')
        .map((e) => ({
          at: Date.parse(e.requestReceivedTimestamp),
          verb: e.verb,
          userAgent: e.userAgent ?? '',
          object: [e.objectRef?.resource, e.objectRef?.subresource, e.objectRef?.namespace, e.objectRef?.name].filter(Boolean).join('/'),
          code: e.responseStatus?.code ?? 0,
        }))
        .sort((a, b) => a.at - b.at),
    stop: async () => {
      await controlPlane.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The writes of the `switchboard controller` replica whose leader-election identity is `identity`. */
export function writesOf(writes: readonly AuditedWrite[], identity: string): AuditedWrite[] {
  return writes.filter((w) => w.userAgent.startsWith(`switchboard-controller/${identity} (`));
}

/** Its successful Lease writes (acquisitions and renewals), in order. */
export function leaseWritesOf(writes: readonly AuditedWrite[], identity: string): AuditedWrite[] {
  return writesOf(writes, identity).filter((w) => w.object.startsWith('leases/') && w.code < 300);
}

/** A write as one line for failure messages: `+1234 ms update endpointslices/ns/web-abc 200`. */
export function describeWrite(w: AuditedWrite, since: number): string {
  return `${w.at - since >= 0 ? '+' : ''}${w.at - since} ms ${w.verb} ${w.object} ${w.code}`;
}
