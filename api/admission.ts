// AdmissionReview (admission.k8s.io/v1): what the API server sends a webhook and what the webhook answers.
import type { Status } from './status.js';

/** The request part of an AdmissionReview; `object` and `oldObject` are the resource the webhook is called for. */
export interface AdmissionRequest<T = unknown> {
  readonly uid: string;
  readonly kind?: { readonly group?: string; readonly version?: string; readonly kind?: string };
  readonly operation?: string;
  readonly dryRun?: boolean;
  readonly namespace?: string;
  readonly name?: string;
  readonly object?: T;
  readonly oldObject?: T;
}

export interface AdmissionReviewRequest<T = unknown> {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly request?: AdmissionRequest<T>;
}

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
