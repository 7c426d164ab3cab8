// The mutating webhook's answer to an allocation: a deny with upstream's Status, or the JSONPatch that writes the
// allocated values into the Service (spec §6.2).
import { allowResponse, denyResponse, type AdmissionReviewResponse, type JsonPatchOperation } from '../../api/admission.js';
import type { Service } from '../../api/wire.js';
import type { AllocationOutcome } from './service-allocation.js';

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
