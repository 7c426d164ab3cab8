// The allocator's memory across restarts and leader changes: when each address was freed (so a freed address
// goes to the back of the reuse order instead of to the next Service) and which addresses were held. Kept in a
// ConfigMap in Switchboard's namespace; losing it only costs the reuse order, never correctness, because held
// addresses are always rebuilt from the Services themselves.
import { isNotFound, type KubeClient } from '../runtime/client.js';
import { ConfigMaps } from '../../api/resources.js';
import type { Logger } from '../runtime/log.js';

export const STATE_CONFIGMAP = 'switchboard-lb-allocator';

export interface AllocatorMemory {
  /** Address → when it was freed (ms since the epoch). */
  freedAt: Map<string, number>;
  /** Addresses held when the state was saved. */
  held: Set<string>;
}

interface Stored {
  freedAt?: Record<string, number>;
  held?: string[];
}

/** The reuse order after a restart: recorded frees, plus addresses held then but not now (freed while we were away). */
export function freedAfterRestart(memory: AllocatorMemory, heldNow: Iterable<string>, now: number): Map<string, number> {
  const out = new Map(memory.freedAt);
  const still = new Set(heldNow);
  for (const ip of memory.held) if (!still.has(ip) && !out.has(ip)) out.set(ip, now);
  for (const ip of still) out.delete(ip);
  return out;
}

export class AllocatorStateStore {
  private saved = '';
  private pending: AllocatorMemory | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly log: Logger,
    private readonly debounceMs = 2000,
  ) {}

  async load(): Promise<AllocatorMemory> {
    try {
      const cm = await this.client.get<{ data?: Record<string, string> }>(ConfigMaps, STATE_CONFIGMAP, this.namespace);
      const stored = JSON.parse(cm.data?.state ?? '{}') as Stored;
      this.saved = cm.data?.state ?? '';
      return { freedAt: new Map(Object.entries(stored.freedAt ?? {})), held: new Set(stored.held ?? []) };
    } catch (err) {
      if (!isNotFound(err)) this.log.warn('could not read the allocator state; freed addresses lose their reuse order', { error: String(err) });
      return { freedAt: new Map(), held: new Set() };
    }
  }

  /** Saves soon (writes are coalesced); the latest memory wins. */
  save(memory: AllocatorMemory): void {
    this.pending = memory;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.writing = this.writing.then(() => this.flush());
    }, this.debounceMs);
  }

  /** Writes what is pending now (on shutdown). */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
    await this.flush();
  }

  private async flush(): Promise<void> {
    const memory = this.pending;
    this.pending = undefined;
    if (!memory) return;
    const state = JSON.stringify({ freedAt: Object.fromEntries(memory.freedAt), held: [...memory.held].sort() } satisfies Stored);
    if (state === this.saved) return;
    const body = { metadata: { name: STATE_CONFIGMAP, namespace: this.namespace, labels: { 'app.kubernetes.io/part-of': 'switchboard' } }, data: { state } };
    try {
      try {
        await this.client.patch(ConfigMaps, STATE_CONFIGMAP, { data: { state } }, 'merge', { namespace: this.namespace });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await this.client.createIfAbsent(ConfigMaps, body);
      }
      this.saved = state;
    } catch (err) {
      this.log.warn('could not save the allocator state', { error: String(err) });
    }
  }
}
