// AdmissionReview (admission.k8s.io/v1) responses of the mutating webhook, and the JSONPatch that writes the
// allocated values into the Service (spec §6.2).
import type { Service } from '../../api/wire.js';
import type { AllocationOutcome } from './service-allocation.js';
import type { Status } from '../../api/status.js';

export interface JsonPatchOperation {
  readonly op: 'add' | 'remove';
  readonly path: string;
  readonly value?: unknown;
}

/** The part of a Status an AdmissionResponse carries (no TypeMeta); the apiserver keeps code, reason, details. */
export type AdmissionStatus = Omit<Status, 'kind' | 'apiVersion' | 'metadata'>;

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: AdmissionStatus;
  readonly patchType?: 'JSONPatch';
  /** Base64 of the JSONPatch document. */
  readonly patch?: string;
  readonly warnings?: readonly string[];
}

export interface AdmissionReviewResponse {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

function review(response: AdmissionResponse): AdmissionReviewResponse {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

/** Allow, with the patch if there is anything to change. */
export function allowResponse(
  uid: string,
  patch: readonly JsonPatchOperation[] = [],
  warnings: readonly string[] = [],
): AdmissionReviewResponse {
  return review({
    uid,
    allowed: true,
    ...(patch.length > 0
      ? { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(patch)).toString('base64') }
      : {}),
    ...(warnings.length > 0 ? { warnings } : {}),
  });
}

/**
 * Deny with a Status. The client gets it with code, reason and details intact (kubectl then prints the causes
 * as for a native error); only the message gains the "admission webhook … denied the request: " prefix.
 */
export function denyResponse(uid: string, status: Status): AdmissionReviewResponse {
  const { kind: _kind, apiVersion: _apiVersion, metadata: _metadata, ...carried } = status;
  return review({ uid, allowed: false, status: carried });
}

/** The response for an executed allocation plan; `original` is the request's object. */
export function allocationResponse(uid: string, original: Service, outcome: AllocationOutcome): AdmissionReviewResponse {
  if (outcome.outcome === 'denied') return denyResponse(uid, outcome.status);
  if (outcome.outcome === 'passThrough') return allowResponse(uid);
  return allowResponse(uid, allocationPatch(original, outcome.service));
}

const SPEC_FIELDS = ['clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy', 'healthCheckNodePort'] as const;

/**
 * Operations turning `original` into `allocated` on the fields allocation decides: clusterIP, clusterIPs,
 * ipFamilies, ipFamilyPolicy, ports[].nodePort and healthCheckNodePort. "add" also replaces an existing member,
 * so the patch applies whether or not the request carried the field.
 */
export function allocationPatch(original: Service, allocated: Service): JsonPatchOperation[] {
  const before = original.spec ?? {};
  const after = allocated.spec ?? {};
  const ops: JsonPatchOperation[] = [];
  if (original.spec === undefined) ops.push({ op: 'add', path: '/spec', value: {} });
  for (const field of SPEC_FIELDS) pushChange(ops, `/spec/${field}`, before[field], after[field]);
  (after.ports ?? []).forEach((port, i) => pushChange(ops, `/spec/ports/${i}/nodePort`, before.ports?.[i]?.nodePort, port.nodePort));
  return ops;
}

function pushChange(ops: JsonPatchOperation[], path: string, before: unknown, after: unknown): void {
  if (JSON.stringify(before) === JSON.stringify(after)) return;
  if (after === undefined) ops.push({ op: 'remove', path });
  else ops.push({ op: 'add', path, value: after });
}
