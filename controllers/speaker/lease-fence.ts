// Fencing a peer's speaker Lease before taking anything it may answer (issue 14: "never two answering nodes").
//
// A peer judges a Lease dead `leaseDurationMs` after it SAW the last renewal. That alone is not enough: a watch that
// delivers the holder's next renewal late (more than the duration minus the renew interval, ~1 s) makes the peer judge
// the holder dead while the holder is inside the window of a renewal that succeeded, and both would answer. So a
// node that is about to answer an address it does not answer yet, while some peer's Lease is dead in its view but
// still there, first FENCES that Lease: a compare-and-swap write (a PUT carrying the resourceVersion it judged) that
// adds FENCED_BY_ANNOTATION and leaves renewTime alone, as client-go's election takes its single Lease by CAS.
// - The write succeeds only if no renewal landed since the version judged; that version was seen at least one lease
//   duration ago (on this node's clock), so the holder's window from it has closed (node-lease.ts, its fence).
//   Nobody is timed by a stamp of the holder's clock here: Lease versions first seen at start-up are timed from when
//   they were observed (SpeakerLiveness.observedAt), and what a fenced Lease lists keeps blocking until then.
// - A conflict means the holder renewed meanwhile: the fencer re-reads the Lease and judges it again (live).
// - The holder's next renewal conflicts (the resourceVersion moved), re-reads, finds the fence: it drops every
//   address, resyncs, and clears the fence with a renewal that lists none (node-lease.ts). A renewal in flight when
//   the fence lands conflicts the same way, so it never reopens a window.
// - A fenced Lease is dead to every node, not only to the fencer: its holder cannot renew without seeing the fence.
// The cost is one write per Lease that dies without being deleted (SIGKILL, a frozen or partitioned node), by a node
// that has something to take (its successor); a graceful stop deletes the Lease and needs none.
import { isConflict, isNotFound, type KubeClient } from '../runtime/client.js';
import type { Logger } from '../runtime/log.js';
import { Leases } from '../../api/resources.js';
import type { Lease } from '../../api/wire.js';

/** Set on a speaker Lease by the node that fenced it: `<node> <RFC 3339 time> rv=<resourceVersion fenced>`. */
export const FENCED_BY_ANNOTATION = 'switchboard.dev/fenced-by';

/** The fence on a Lease, if any (a holder's renewal removes it). */
export const fenceOf = (lease: Lease): string | undefined => lease.metadata?.annotations?.[FENCED_BY_ANNOTATION] || undefined;

/** A renewal found its Lease fenced by a peer: the holder must answer nothing before it renews again. */
export class LeaseFencedError extends Error {
  constructor(readonly fence: string) {
    super(`the speaker lease was fenced by a peer (${fence})`);
  }
}

/** A failed fence (not a conflict) is tried again no sooner than this. */
const RETRY_MS = 250;

export interface LeaseFencerOptions {
  client: KubeClient;
  namespace: string;
  node: string;
  log: Logger;
  /**
   * The Lease as the fence left it (fenced, or renewed meanwhile), or the name of one that is gone, or of one whose
   * fence failed and may be tried again now: RETRY_MS after the failure, since nothing else may come to make the
   * speaker judge again (a dead peer's Lease does not change, and the address waits for its fence).
   */
  onSettled: (outcome: { lease: Lease } | { gone: string } | { retry: string }) => void;
  now?: () => number;
}

export class LeaseFencer {
  private readonly inFlight = new Set<string>();
  private readonly failedAt = new Map<string, number>();
  private readonly now: () => number;
  /** Fence writes that succeeded, for the tests and the logs. */
  fenced = 0;

  constructor(private readonly o: LeaseFencerOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Fences each Lease, as judged (its resourceVersion), unless a fence of it is in flight or failed just now. */
  fence(leases: readonly Lease[]): void {
    for (const lease of leases) {
      const name = lease.metadata?.name ?? '';
      if (!name || this.inFlight.has(name) || (this.failedAt.get(name) ?? -Infinity) + RETRY_MS > this.now()) continue;
      this.inFlight.add(name);
      void this.fenceOne(lease).finally(() => this.inFlight.delete(name));
    }
  }

  private failed(name: string): void {
    this.failedAt.set(name, this.now());
    setTimeout(() => this.o.onSettled({ retry: name }), RETRY_MS).unref();
  }

  private async fenceOne(judged: Lease): Promise<void> {
    const { client, namespace, node, log } = this.o;
    const name = judged.metadata?.name ?? '';
    const value = `${node} ${new Date(this.now()).toISOString()} rv=${judged.metadata?.resourceVersion ?? ''}`;
    const body: Lease = { ...judged, metadata: { ...judged.metadata, annotations: { ...judged.metadata?.annotations, [FENCED_BY_ANNOTATION]: value } } };
    const bounded = { signal: AbortSignal.timeout(5_000), unthrottled: true };
    try {
      const written = await client.replace<Lease>(Leases, { ...body, metadata: { ...body.metadata, namespace } }, undefined, bounded);
      this.fenced++;
      this.failedAt.delete(name);
      log.info('fenced the lease of a speaker judged dead before taking over', { lease: name, holder: judged.spec?.holderIdentity, resourceVersion: judged.metadata?.resourceVersion });
      this.o.onSettled({ lease: written });
    } catch (err) {
      if (isNotFound(err)) return this.o.onSettled({ gone: name });
      if (!isConflict(err)) {
        this.failed(name);
        log.warn('could not fence a speaker lease; retrying', { lease: name, error: String(err) });
        return;
      }
      // The holder renewed (or another node fenced it) since the version judged: judge what is there now.
      try {
        const current = await client.getOrUndefined<Lease>(Leases, name, namespace, bounded);
        this.o.onSettled(current ? { lease: current } : { gone: name });
      } catch (readErr) {
        this.failed(name);
        log.warn('could not re-read a speaker lease after a fence conflict', { lease: name, error: String(readErr) });
      }
    }
  }
}
