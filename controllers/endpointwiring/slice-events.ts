// Which EndpointSlice events make a slice-writing controller sync the slice's owner (upstream onEndpointSliceAdd/
// Update/Delete, the same in the EndpointSlice and mirroring controllers): its own slices when they changed behind
// its back (not echoes of its own writes, which the tracker recognises), and any slice whose service-name label
// or managed-by label moved.
import type { EventHandlers } from '../runtime/informer.js';
import type { Logger } from '../runtime/log.js';
import type { EndpointSlice } from '../../api/wire.js';
import type { CacheCatchUp } from './cache-catch-up.js';
import { LABEL_ENDPOINTSLICE_SERVICE_NAME, LABEL_MANAGED_BY } from '../endpointutil/constants.js';
import { type EndpointSliceTracker, sliceOwnerKey } from '../endpointutil/tracker.js';

/**
 * `sync` gets the owner's key and, for a controller that syncs after a delay, whether the sync is still needed when
 * the delay ends: an event judged by the tracker is re-judged then. In Node the watch event of our own write is often
 * read before the write's answer, when the tracker does not know the new generation yet, so the echo looks like
 * someone else's edit; by the end of the delay the answer is in. Without the second look, creating 10,000 pods
 * (bench-compare) ran a third of the EndpointSlice syncs for such echoes, outside the pod-sync budget.
 */
export function sliceEventHandlers(tracker: EndpointSliceTracker, managedBy: string, sync: (ownerKey: string, stillNeeded: () => boolean) => void, log: Logger): EventHandlers<EndpointSlice> {
  const ours = (slice: EndpointSlice) => slice.metadata?.labels?.[LABEL_MANAGED_BY] === managedBy;
  const always = () => true;
  const queueOwner = (slice: EndpointSlice, stillNeeded: () => boolean = always) => {
    if (slice.metadata?.labels?.[LABEL_ENDPOINTSLICE_SERVICE_NAME]) sync(sliceOwnerKey(slice), stillNeeded);
    else if (ours(slice)) {
      const name = `${slice.metadata?.namespace}/${slice.metadata?.name}`;
      log.info('slice carries our managed-by label but no service-name label: nothing to sync, left alone', { slice: name, managedBy });
    }
  };
  return {
    onAdd: (slice) => {
      if (ours(slice) && tracker.shouldSync(slice)) queueOwner(slice, () => tracker.shouldSync(slice));
    },
    onUpdate: (old, slice) => {
      if (sliceOwnerKey(old) !== sliceOwnerKey(slice)) {
        queueOwner(old);
        queueOwner(slice);
      } else if (ours(old) !== ours(slice)) {
        queueOwner(slice);
      } else if (ours(slice) && tracker.shouldSync(slice)) {
        queueOwner(slice, () => tracker.shouldSync(slice));
      }
    },
    onDelete: (slice) => {
      // handleDeletion is false for a deletion we did not make.
      if (ours(slice) && tracker.has(slice) && !tracker.handleDeletion(slice)) queueOwner(slice);
    },
  };
}

/** Every event of a slice wakes the syncs of its owner waiting for their cache to catch up (echoes included). */
export function notifyOwners(catchUp: CacheCatchUp): EventHandlers<EndpointSlice> {
  const notify = (slice: EndpointSlice) => catchUp.notify(sliceOwnerKey(slice));
  return { onAdd: notify, onUpdate: (_, slice) => notify(slice), onDelete: notify };
}
