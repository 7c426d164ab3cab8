// Field errors and Status bodies exactly as the apiserver builds them (apimachinery's field and api/errors
// packages), the allocation errors of spec §5, and what kubectl prints for a Status (spec §5.4). The one renderer
// of field errors: Service allocation, LoadBalancer pools and L2Advertisements all report through it.
//
// Bad values carry their Go type because the text depends on it: a string is quoted, an int32 is bare, and a
// slice prints as JSON (apimachinery v0.34, our pinned Kubernetes v1.34.4: `["10.96.0.50"]`) or, in the releases
// the spec quotes, as Go syntax (`[]string{"10.96.0.50"}`). Both styles are kept; JSON is the default.
import { goJSON, goQuote } from './go-text.js';

// ---------------------------------------------------------------------------------------------------------------
// Bad values

/** A value of a named Go string type, e.g. core.IPFamily("IPv6") or a dereferenced *core.IPFamilyPolicy. */
export interface GoNamedString {
  readonly goType: string;
  readonly value: string;
}

/** A Go slice; `items: null` is a nil slice. `elementType` is the Go element type, e.g. "string", "core.IPFamily". */
export interface GoSlice {
  readonly elementType: string;
  readonly items: readonly (string | number)[] | null;
}

/** A Go value as a bad value: string, int, bool, nil (also a nil pointer), named string or slice. */
export type GoValue = string | number | boolean | null | GoNamedString | GoSlice;

/** apimachinery renders non-scalar bad values as JSON since v0.34 (`json`), with Go's %#v before (`go-syntax`). */
export type ValueStyle = 'json' | 'go-syntax';
export const DEFAULT_VALUE_STYLE: ValueStyle = 'json';

export function goString(goType: string, value: string): GoNamedString {
  return { goType, value };
}

export function goSlice(elementType: string, items: readonly (string | number)[] | null | undefined): GoSlice {
  return { elementType, items: items ?? null };
}

/** A *string-typed pointer field such as spec.ipFamilyPolicy: nil renders as null, otherwise as the named value. */
export function goStringPointer(goType: string, value: string | undefined): GoNamedString | null {
  return value === undefined ? null : goString(goType, value);
}

function isSlice(value: GoValue): value is GoSlice {
  return typeof value === 'object' && value !== null && 'elementType' in value;
}

/** The text after "Invalid value: " for a bad value. */
export function renderValue(value: GoValue, style: ValueStyle = DEFAULT_VALUE_STYLE): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return goQuote(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (!isSlice(value)) return style === 'json' ? goJSON(value.value) : goQuote(value.value);
  if (style === 'json') return goJSON(value.items);
  if (value.items === null) return `[]${value.elementType}(nil)`;
  const items = value.items.map((item) => (typeof item === 'string' ? goQuote(item) : String(item)));
  return `[]${value.elementType}{${items.join(', ')}}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Field paths

/** field.Path: "spec.ports[0].nodePort", "metadata.annotations[example.com/x]". */
export class FieldPath {
  private constructor(private readonly text: string) {}

  static of(root: string, ...children: string[]): FieldPath {
    return children.reduce((path, name) => path.child(name), new FieldPath(root));
  }

  child(name: string): FieldPath {
    return new FieldPath(`${this.text}.${name}`);
  }

  index(i: number): FieldPath {
    return new FieldPath(`${this.text}[${i}]`);
  }

  key(k: string): FieldPath {
    return new FieldPath(`${this.text}[${k}]`);
  }

  toString(): string {
    return this.text;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Field errors

export type FieldErrorType =
  | 'FieldValueNotFound'
  | 'FieldValueRequired'
  | 'FieldValueDuplicate'
  | 'FieldValueInvalid'
  | 'FieldValueNotSupported'
  | 'FieldValueForbidden'
  | 'FieldValueTooLong'
  | 'FieldValueTooMany'
  | 'InternalError'
  | 'FieldValueTypeInvalid';

const ERROR_TYPE_TEXT: Record<FieldErrorType, string> = {
  FieldValueNotFound: 'Not found',
  FieldValueRequired: 'Required value',
  FieldValueDuplicate: 'Duplicate value',
  FieldValueInvalid: 'Invalid value',
  FieldValueNotSupported: 'Unsupported value',
  FieldValueForbidden: 'Forbidden',
  FieldValueTooLong: 'Too long',
  FieldValueTooMany: 'Too many',
  InternalError: 'Internal error',
  FieldValueTypeInvalid: 'Invalid value',
};

/** Types whose text never shows the bad value. */
const VALUELESS_TYPES: ReadonlySet<FieldErrorType> = new Set([
  'FieldValueRequired',
  'FieldValueForbidden',
  'FieldValueTooLong',
  'InternalError',
]);

/** Marks a bad value that is left out of the text (apimachinery's omitValue). */
export const OMITTED_VALUE = Symbol('omitted value');

export interface FieldError {
  readonly type: FieldErrorType;
  readonly field: string;
  readonly badValue: GoValue | typeof OMITTED_VALUE;
  readonly detail: string;
}

/** Where an error is: a FieldPath, or a path already written out ("spec.addresses[1]"). */
export type FieldLocation = FieldPath | string;

export function invalid(path: FieldLocation, value: GoValue, detail: string): FieldError {
  return { type: 'FieldValueInvalid', field: path.toString(), badValue: value, detail };
}

export function required(path: FieldLocation, detail = ''): FieldError {
  return { type: 'FieldValueRequired', field: path.toString(), badValue: '', detail };
}

export function duplicate(path: FieldLocation, value: GoValue): FieldError {
  return { type: 'FieldValueDuplicate', field: path.toString(), badValue: value, detail: '' };
}

export function forbidden(path: FieldLocation, detail: string): FieldError {
  return { type: 'FieldValueForbidden', field: path.toString(), badValue: '', detail };
}

export function notSupported(path: FieldLocation, value: GoValue, validValues: readonly string[]): FieldError {
  const detail = validValues.length === 0 ? '' : `supported values: ${validValues.map(goQuote).join(', ')}`;
  return { type: 'FieldValueNotSupported', field: path.toString(), badValue: value, detail };
}

export function tooMany(path: FieldLocation, actual: number, max: number): FieldError {
  const detail = max >= 0 ? `must have at most ${max} ${max === 1 ? 'item' : 'items'}` : 'has too many items';
  return { type: 'FieldValueTooMany', field: path.toString(), badValue: actual >= 0 ? actual : OMITTED_VALUE, detail };
}

export function internalFieldError(path: FieldLocation, message: string): FieldError {
  return { type: 'InternalError', field: path.toString(), badValue: null, detail: message };
}

/** The repeats in a list of strings, as Duplicate errors at their index (the first occurrence is fine). */
export function duplicateEntries(values: readonly string[] | undefined, path: FieldLocation): FieldError[] {
  const seen = new Set<string>();
  const errors: FieldError[] = [];
  (values ?? []).forEach((value, i) => {
    if (seen.has(value)) errors.push(duplicate(`${path.toString()}[${i}]`, value));
    seen.add(value);
  });
  return errors;
}

/** ErrorBody(): the text without the field, e.g. `Invalid value: 80: provided port is not in the valid range…`. */
export function errorBody(error: FieldError, style: ValueStyle = DEFAULT_VALUE_STYLE): string {
  const typeText = ERROR_TYPE_TEXT[error.type];
  const head =
    VALUELESS_TYPES.has(error.type) || error.badValue === OMITTED_VALUE
      ? typeText
      : `${typeText}: ${renderValue(error.badValue, style)}`;
  return error.detail === '' ? head : `${head}: ${error.detail}`;
}

/** Error(): `<field>: <body>`. */
export function errorString(error: FieldError, style: ValueStyle = DEFAULT_VALUE_STYLE): string {
  return `${error.field}: ${errorBody(error, style)}`;
}

/** ErrorList.ToAggregate().Error(): one error bare, several as "[e1, e2]", duplicates (by text) dropped. */
export function aggregateMessage(errors: readonly FieldError[], style: ValueStyle = DEFAULT_VALUE_STYLE): string {
  const texts = [...new Set(errors.map((e) => errorString(e, style)))];
  return texts.length === 1 ? texts[0] : `[${texts.join(', ')}]`;
}

// ---------------------------------------------------------------------------------------------------------------
// Status bodies

export interface StatusCause {
  readonly reason?: string;
  readonly message?: string;
  readonly field?: string;
}

export interface StatusDetails {
  readonly name?: string;
  readonly group?: string;
  readonly kind?: string;
  readonly causes?: readonly StatusCause[];
}

/** metav1.Status with its members in Go's JSON order, so JSON.stringify gives the apiserver's bytes. */
export interface Status {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Failure' | 'Success';
  readonly message?: string;
  readonly reason?: string;
  readonly details?: StatusDetails;
  readonly code: number;
}

export interface InvalidStatusOptions {
  /** API group of the kind; "" (core) is left out of the message. */
  readonly group?: string;
  readonly style?: ValueStyle;
}

/** errors.NewInvalid: HTTP 422, reason Invalid, one cause per error (causes are not de-duplicated). */
export function invalidStatus(
  kind: string,
  name: string,
  errors: readonly FieldError[],
  options: InvalidStatusOptions = {},
): Status {
  const group = options.group ?? '';
  const style = options.style ?? DEFAULT_VALUE_STYLE;
  const qualifiedKind = group === '' ? kind : `${kind}.${group}`;
  const causes = errors.map((e) => omitEmpty({ reason: e.type, message: errorBody(e, style), field: e.field }));
  const subject = `${qualifiedKind} ${goQuote(name)} is invalid`;
  const message = errors.length === 0 ? subject : `${subject}: ${aggregateMessage(errors, style)}`;
  return failureStatus(422, 'Invalid', message, omitEmpty({ name, group, kind, causes }));
}

/** errors.NewInternalError: HTTP 500, "Internal error occurred: <err>". */
export function internalErrorStatus(message: string): Status {
  return failureStatus(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
}

/** What the apiserver answers for a plain (non-Status) error from the registry: 500, reason Unknown, no details. */
export function unknownErrorStatus(message: string): Status {
  return failureStatus(500, 'Unknown', message);
}

/** errors.NewUnauthorized: HTTP 401, reason Unauthorized (the caller could not be authenticated). */
export function unauthorizedStatus(message: string): Status {
  return failureStatus(401, 'Unauthorized', message);
}

/** HTTP 403, reason Forbidden: the caller is known but not allowed. */
export function forbiddenStatus(message: string): Status {
  return failureStatus(403, 'Forbidden', message);
}

/** errors.NewTooManyRequests without a retry hint: HTTP 429, reason TooManyRequests. */
export function tooManyRequestsStatus(message: string): Status {
  return failureStatus(429, 'TooManyRequests', message);
}

/** A Failure Status; members are written in Go's JSON order. */
function failureStatus(code: number, reason: string | undefined, message: string, details?: StatusDetails): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    ...(reason ? { reason } : {}),
    ...(details ? { details } : {}),
    code,
  };
}

/** Go's omitempty for the string and slice members of a cause or details. */
function omitEmpty<T extends object>(value: T): T {
  const entries = Object.entries(value).filter(([, v]) => v !== '' && v !== undefined && !(Array.isArray(v) && v.length === 0));
  return Object.fromEntries(entries) as T;
}

// ---------------------------------------------------------------------------------------------------------------
// Allocation errors (spec §5.1, §5.2, §4)

/** The allocators' error texts, v1.34. */
export const ALLOCATOR_ERRORS = {
  rangeFull: 'range is full',
  ipAlreadyAllocated: 'provided IP is already allocated',
  /** v1.34's ServiceCIDR allocator answers this for a requested IP that no configured range holds. */
  mismatchedNetwork: 'the provided network does not match the current range',
  notReady: 'allocator not ready',
  portAlreadyAllocated: 'provided port is already allocated',
} as const;

/** The single-range allocator's ErrNotInRange, v1.26+ wording (the ServiceCIDR allocator uses mismatchedNetwork). */
export function ipNotInRangeReason(ip: string, cidr: string): string {
  return `the provided IP (${ip}) is not in the valid range. The range of valid IPs is ${cidr}`;
}

/** The port allocator's ErrNotInRange; `rangeText` is "base-end", e.g. "30000-32767". */
export function portNotInRangeReason(rangeText: string): string {
  return `provided port is not in the valid range. The range of valid ports is ${rangeText}`;
}

const SERVICE_KIND = 'Service';

/**
 * A requested ClusterIP could not be taken: 422 on `spec.clusterIPs` (no index) whose bad value is the whole
 * clusterIPs list as it stood when allocating, "" placeholders for families still to be allocated included.
 */
export function clusterIPAllocationStatus(
  serviceName: string,
  clusterIPs: readonly string[],
  ip: string,
  reason: string,
  style?: ValueStyle,
): Status {
  const error = invalid(FieldPath.of('spec', 'clusterIPs'), goSlice('string', clusterIPs), `failed to allocate IP ${ip}: ${reason}`);
  return invalidStatus(SERVICE_KIND, serviceName, [error], { style });
}

/** No ClusterIP could be picked (range full, not ready, store error): 500. */
export function dynamicClusterIPStatus(reason: string): Status {
  return internalErrorStatus(`failed to allocate a serviceIP: ${reason}`);
}

/** A requested nodePort could not be taken: 422 on `spec.ports[i].nodePort` with the port printed bare. */
export function nodePortAllocationStatus(serviceName: string, portIndex: number, port: number, reason: string): Status {
  const path = FieldPath.of('spec', 'ports').index(portIndex).child('nodePort');
  return invalidStatus(SERVICE_KIND, serviceName, [invalid(path, port, reason)]);
}

/** No nodePort could be picked: 500. */
export function dynamicNodePortStatus(reason: string): Status {
  return internalErrorStatus(`failed to allocate a nodePort: ${reason}`);
}

/**
 * Any healthCheckNodePort failure is a 500, even "already allocated". For a dynamic pick upstream prints the
 * port it failed to get, which is always 0.
 */
export function healthCheckNodePortStatus(requested: number | undefined, reason: string): Status {
  return internalErrorStatus(
    requested === undefined
      ? `failed to allocate a HealthCheck NodePort 0: ${reason}`
      : `failed to allocate requested HealthCheck NodePort ${requested}: ${reason}`,
  );
}

/** The update path's (protocol, nodePort) duplicate check: a plain error, hence 500 Unknown. */
export function duplicateNodePortStatus(protocol: string, nodePort: number): Status {
  return unknownErrorStatus(`duplicate nodePort: {${protocol} ${nodePort}}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Webhook pass-through and kubectl

/**
 * What the apiserver makes of a Status a webhook denied with (webhook/errors.ToStatusErr): the code is kept but
 * raised to 400 at least, status forced to Failure, reason and details kept, and the message prefixed.
 */
export function webhookDenialStatus(webhookName: string, result: Partial<Status> | undefined): Status {
  const deniedBy = `admission webhook ${goQuote(webhookName)} denied the request`;
  const message = result?.message
    ? `${deniedBy}: ${result.message}`
    : result?.reason
      ? `${deniedBy}: ${result.reason}`
      : `${deniedBy} without explanation`;
  const code = result?.code !== undefined && result.code >= 400 ? result.code : 400;
  return failureStatus(code, result?.reason, message, result?.details);
}

/** The file kubectl was reading, as in `kubectl create -f web.yaml` (verb "creating"). */
export interface KubectlSource {
  readonly verb: string;
  readonly file: string;
}

/**
 * What kubectl writes to stderr for a failed request (cmdutil.CheckErr), trailing newline included.
 * An Invalid Status with details is rebuilt from its causes, so the server's message (and any webhook prefix)
 * is not shown; anything else prints as `Error from server (<reason>): <message>`.
 */
export function kubectlErrorOutput(status: Status, source?: KubectlSource): string {
  const message =
    source && status.message !== undefined
      ? `error when ${source.verb} ${goQuote(source.file)}: ${status.message}`
      : (status.message ?? '');
  if (status.reason === 'Invalid') return withNewline(kubectlInvalid(status, message));
  if (status.reason === 'Unauthorized') return withNewline(`error: You must be logged in to the server (${message})`);
  if (status.reason) return withNewline(`Error from server (${status.reason}): ${message}`);
  return withNewline(`Error from server: ${message}`);
}

function kubectlInvalid(status: Status, message: string): string {
  const details = status.details;
  if (!details) return message ? `The request is invalid: ${message}` : 'The request is invalid';
  const causes = details.causes ?? [];
  let head = 'The request is invalid';
  if (details.kind || details.name) head = `The ${details.kind ?? ''} ${goQuote(details.name ?? '')} is invalid`;
  else if (message && causes.length === 0) head += `: ${message}`;
  if (causes.length === 0) return head;

  const lines = [...new Set(causes.map((c) => `${c.field ?? ''}: ${c.message ?? ''}`))];
  if (lines.length === 1) return `${head}: ${lines[0]}\n`;
  return `${head}: \n${lines.map((line) => `* ${line}\n`).join('')}`;
}

function withNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}
