// Shared pieces of Switchboard's own custom resources (group switchboard.dev).
import type { V1Condition, V1LabelSelector } from '@kubernetes/client-node';
import type { ResourceType } from '../api/resources.js';
import type { Wire } from '../api/wire.js';

export const SWITCHBOARD_GROUP = 'switchboard.dev';
export const LB_VERSION = 'v1beta1';
export const LB_API_VERSION = `${SWITCHBOARD_GROUP}/${LB_VERSION}`;

export type LabelSelector = Wire<V1LabelSelector>;
export type LabelSelectorRequirement = NonNullable<LabelSelector['matchExpressions']>[number];
/** metav1.Condition as it travels over the wire. */
export type Condition = Wire<V1Condition>;

export const lbResource = (plural: string, kind: string, namespaced: boolean): ResourceType => ({
  group: SWITCHBOARD_GROUP,
  version: LB_VERSION,
  plural,
  kind,
  namespaced,
});
