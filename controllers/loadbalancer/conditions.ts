// metav1.Condition bookkeeping shared by the LoadBalancer controller and the speaker: a condition's
// lastTransitionTime moves only when its status flips, so `kubectl describe` shows since when a Service is pending.
import type { Condition } from '../../crds/meta.js';

export interface ConditionDraft {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

/** The list with `draft` set (replacing the condition of its type); other types are kept in order. */
export function setCondition(conditions: readonly Condition[] | undefined, draft: ConditionDraft, now: Date, observedGeneration?: number): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === draft.type);
  const previous = i >= 0 ? list[i] : undefined;
  const lastTransitionTime = previous && previous.status === draft.status && previous.lastTransitionTime ? previous.lastTransitionTime : rfc3339(now);
  const next: Condition = { ...draft, lastTransitionTime, ...(observedGeneration !== undefined ? { observedGeneration } : {}) };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

/** The list without conditions of `type`. */
export const removeCondition = (conditions: readonly Condition[] | undefined, type: string): Condition[] => (conditions ?? []).filter((c) => c.type !== type);

/** Whether a condition of draft's type already says what draft says (generation aside). */
export function conditionSays(conditions: readonly Condition[] | undefined, draft: ConditionDraft): boolean {
  const c = conditions?.find((x) => x.type === draft.type);
  return c !== undefined && c.status === draft.status && c.reason === draft.reason && c.message === draft.message;
}

/** metav1.Time: RFC 3339 in seconds. */
export const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d+Z$/, 'Z');
