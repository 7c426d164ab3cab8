// Field errors for LoadBalancer configuration, rendered the way apimachinery renders them
// (`spec.addresses[1]: Invalid value: "10.0.0.1/24": …`) so webhook denials and status conditions read like
// native validation errors.

export type FieldErrorType = 'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueDuplicate' | 'FieldValueForbidden' | 'FieldValueNotSupported';

export interface FieldError {
  type: FieldErrorType;
  field: string;
  value?: unknown;
  detail?: string;
}

const TYPE_TEXT: Record<FieldErrorType, string> = {
  FieldValueInvalid: 'Invalid value',
  FieldValueRequired: 'Required value',
  FieldValueDuplicate: 'Duplicate value',
  FieldValueForbidden: 'Forbidden',
  FieldValueNotSupported: 'Unsupported value',
};

const renderValue = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'null' : String(v));

/** The body of a cause (apimachinery's ErrorBody): no field. Required and Forbidden omit the value. */
export function fieldErrorBody(e: FieldError): string {
  const showsValue = e.type !== 'FieldValueRequired' && e.type !== 'FieldValueForbidden';
  let s = TYPE_TEXT[e.type];
  if (showsValue) s += `: ${renderValue(e.value)}`;
  if (e.detail) s += `: ${e.detail}`;
  return s;
}

export const renderFieldError = (e: FieldError): string => `${e.field}: ${fieldErrorBody(e)}`;

/** Several errors the way utilerrors.NewAggregate prints them: one bare, several as `[a, b]`, deduplicated. */
export function renderFieldErrors(errors: readonly FieldError[]): string {
  const texts = [...new Set(errors.map(renderFieldError))];
  return texts.length === 1 ? texts[0] : `[${texts.join(', ')}]`;
}

export const invalid = (field: string, value: unknown, detail: string): FieldError => ({ type: 'FieldValueInvalid', field, value, detail });
export const required = (field: string, detail?: string): FieldError => ({ type: 'FieldValueRequired', field, detail });
export const duplicate = (field: string, value: unknown): FieldError => ({ type: 'FieldValueDuplicate', field, value });
export const forbidden = (field: string, detail: string): FieldError => ({ type: 'FieldValueForbidden', field, detail });
export const notSupported = (field: string, value: unknown, supported: readonly string[]): FieldError => ({
  type: 'FieldValueNotSupported',
  field,
  value,
  detail: `supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}`,
});

/** Duplicate entries of a string list, as Duplicate errors at their index. */
export function duplicateEntries(values: readonly string[] | undefined, field: string): FieldError[] {
  const seen = new Set<string>();
  const out: FieldError[] = [];
  (values ?? []).forEach((v, i) => {
    if (seen.has(v)) out.push(duplicate(`${field}[${i}]`, v));
    seen.add(v);
  });
  return out;
}
