// `switchboard controller` replicas kept running as a Deployment keeps them: a replica that exits (SIGKILL, or exit 1
// after losing its lease) is replaced by a new process with a new identity and webhook port.
import { freePort } from '../../cmd/up/controlplane/processes.js';
import { Leases } from '../../api/resources.js';
import type { Lease } from '../../api/wire.js';
import type { KubeClient } from '../../controllers/runtime/client.js';
import { exited, stopSwitchboard, type SwitchboardProcess } from './switchboard-process.js';

export interface Replica extends SwitchboardProcess {
  webhookPort: number;
}

export interface ReplicaSetOptions {
  name: string;
  replicas: number;
  /** Starts one replica with this identity, serving its webhook on `webhookPort`. */
  spawn: (id: string, webhookPort: number) => SwitchboardProcess;
  /** Called with the live replicas whenever one starts or exits (e.g. to route the webhook balancer). */
  onChange?: (live: Replica[]) => void;
  /** Pause before a replacement starts, as a kubelet's restart back-off would. */
  restartDelayMs?: number;
}

/** Whether it leads at this moment: it started its controllers and has not lost leadership or stopped them since. */
export function leadsNow(p: SwitchboardProcess): boolean {
  const started = p.output.findLastIndex((l) => l.includes('"starting controllers"'));
  return started >= 0 && !p.output.slice(started).some((l) => l.includes('"lost leadership"') || l.includes('"stopping controllers"'));
}

export class ReplicaSet {
  /** Every process started, in order, the exited ones included. */
  readonly processes: Replica[] = [];
  private stopped = false;

  constructor(private readonly options: ReplicaSetOptions) {}

  async start(): Promise<void> {
    for (let i = 0; i < this.options.replicas; i++) await this.add();
  }

  live(): Replica[] {
    return this.processes.filter((p) => !exited(p));
  }

  /** Replacements started so far. */
  get restarts(): number {
    return this.processes.length - this.options.replicas;
  }

  /**
   * Exactly one leader: the Lease names a live replica and was renewed within its duration, that replica leads now,
   * and no other live one does.
   */
  async singleLeader(client: KubeClient, namespace: string, leaseName = 'switchboard-controller'): Promise<true | string> {
    const lease = await client.getOrUndefined<Lease>(Leases, leaseName, namespace);
    const holder = lease?.spec?.holderIdentity;
    const live = this.live();
    const leading = live.filter(leadsNow).map((p) => p.id);
    if (!holder || !live.some((p) => p.id === holder)) return `the Lease names ${holder ?? 'nobody'}, live: ${live.map((p) => p.id).join(', ')}`;
    const sinceRenewal = Date.now() - Date.parse(String(lease?.spec?.renewTime));
    if (!(sinceRenewal <= (lease?.spec?.leaseDurationSeconds ?? 0) * 1000)) return `the Lease of ${holder} was last renewed ${sinceRenewal} ms ago`;
    return leading.length === 1 && leading[0] === holder ? true : `the Lease names ${holder}, leading: [${leading.join(', ')}]`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.live().map((p) => stopSwitchboard(p, 'SIGKILL')));
  }

  private async add(): Promise<Replica> {
    const webhookPort = await freePort();
    const id = `${this.options.name}-${this.processes.length}`;
    const replica: Replica = { ...this.options.spawn(id, webhookPort), webhookPort };
    this.processes.push(replica);
    this.options.onChange?.(this.live());
    replica.child.once('exit', () => {
      this.options.onChange?.(this.live());
      if (!this.stopped) setTimeout(() => void (this.stopped ? undefined : this.add()), this.options.restartDelayMs ?? 500);
    });
    return replica;
  }
}
