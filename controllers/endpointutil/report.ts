// What a pure reconciler hands back: the slice writes, input it could not use (so the wiring can log it or emit
// an Event) and the Events upstream would record.
import type { EndpointSlice } from '../../api/wire.js';

/** Why an input item was left out. Stable codes, so the wiring can choose a log level or an Event per code. */
export type SkipCode =
  | 'PodNoIP' // the pod has neither status.podIP nor status.podIPs (usually: not started yet)
  | 'PodInvalidIP' // a pod IP does not parse
  | 'PodNoIPOfFamily' // the pod has no IP of the family the object needs
  | 'PodNodeNotFound' // spec.nodeName names a Node the cache does not have
  | 'PodPortNotFound' // a named targetPort matches no container port of the pod
  | 'PodOtherNamespace' // the pod is not in the Service's namespace
  | 'ServicePortInvalid' // a Service port has an unusable number, targetPort, protocol or name
  | 'ServicePortCollision' // a Service port repeats the name of an earlier one
  | 'SliceNotOurs' // a slice passed in lacks our labels or lives elsewhere
  | 'SliceUnnamed' // a slice passed in has no metadata.name, so it cannot be written
  | 'SliceLabelReserved' // the Service carries a label key reserved for slices
  | 'AddressInvalidIP' // an Endpoints address is not a valid (non-special) IP
  | 'AddressOverCapacity' // addresses beyond the per-subset mirroring cap
  | 'EndpointsLeaderElection'; // an Endpoints object used as a leader-election lock

export interface SkippedItem {
  kind: 'Pod' | 'ServicePort' | 'EndpointSlice' | 'Endpoints' | 'Address' | 'Service';
  /** Object name (pod/slice), port name or index, or the IP for addresses. */
  name: string;
  code: SkipCode;
  reason: string;
}

/** An Event to record on the object the controller works for (Service or Endpoints), as upstream does. */
export interface ControllerEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** The writes of a slice reconciler, to be sent in this order: creates, updates, deletes. */
export interface SliceWrites {
  /** New slices: metadata.generateName is set, metadata.name is not. */
  toCreate: EndpointSlice[];
  /** Whole slices to PUT; one without metadata.resourceVersion is an unconditional update. */
  toUpdate: EndpointSlice[];
  /** Existing slices to delete, as they were given. */
  toDelete: EndpointSlice[];
  skipped: SkippedItem[];
  events: ControllerEvent[];
}

export function noSliceWrites(): SliceWrites {
  return { toCreate: [], toUpdate: [], toDelete: [], skipped: [], events: [] };
}
