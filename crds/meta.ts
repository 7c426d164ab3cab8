// Shared pieces of Switchboard's own custom resources (group switchboard.dev).
import type { V1Condition, V1LabelSelector } from '@kubernetes/client-node';
import type { ResourceType } from '../api/resources.js';
import type { Wire } from '../api/wire.js';

export const SWITCHBOARD_GROUP = 'switchboard.dev';
/** Every kind of the group (pools, advertisements, ServiceL2Status, ServiceClaim) is served at this one version. */
export const SWITCHBOARD_VERSION = 'v1beta1';
export const SWITCHBOARD_API_VERSION = `${SWITCHBOARD_GROUP}/${SWITCHBOARD_VERSION}`;

export type LabelSelector = Wire<V1LabelSelector>;
/** metav1.Condition as it travels over the wire. */
export type Condition = Wire<V1Condition>;

/** The descriptor of a kind in Switchboard's own API group. */
export const switchboardResource = (plural: string, kind: string, namespaced: boolean): ResourceType => ({
  group: SWITCHBOARD_GROUP,
  version: SWITCHBOARD_VERSION,
  plural,
  kind,
  namespaced,
});
