// Element types of the wire objects, derived from controllers/runtime/wire.ts so that they stay in step.
import type { Endpoints, EndpointSlice, ObjectMeta, Service } from '../../api/wire.js';

export type SliceEndpoint = EndpointSlice['endpoints'][number];
export type SlicePort = NonNullable<EndpointSlice['ports']>[number];
export type EndpointSubset = NonNullable<Endpoints['subsets']>[number];
export type SubsetAddress = NonNullable<EndpointSubset['addresses']>[number];
export type SubsetPort = NonNullable<EndpointSubset['ports']>[number];
export type ServicePort = NonNullable<NonNullable<Service['spec']>['ports']>[number];
export type OwnerReference = NonNullable<ObjectMeta['ownerReferences']>[number];
export type ObjectReference = NonNullable<SliceEndpoint['targetRef']>;
export type Labels = Record<string, string>;
