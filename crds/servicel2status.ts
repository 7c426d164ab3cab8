// ServiceL2Status: which node announces a Service's addresses, and why nobody does when nobody does.
// Unlike MetalLB (one object per speaker in its own namespace, generateName l2-), Switchboard keeps one object per
// Service, in the Service's namespace, named like the Service and owned by it, so `kubectl get servicel2status -n app`
// answers "who announces my Service" and the object goes away with the Service.
import type { ObjectMeta } from '../api/wire.js';
import { switchboardResource, type Condition } from './meta.js';

export const ServiceL2Statuses = switchboardResource('servicel2statuses', 'ServiceL2Status', true);

// Labels the speaker puts on ServiceL2Status objects; its informer watches only objects with the service-name one.
export const LABEL_L2STATUS_NODE = 'switchboard.dev/node';
export const LABEL_L2STATUS_SERVICE_NAME = 'switchboard.dev/service-name';
export const LABEL_L2STATUS_SERVICE_NAMESPACE = 'switchboard.dev/service-namespace';

export interface ServiceL2StatusStatus {
  /** The announcing node; empty while nobody announces (see the Announced condition). */
  node?: string;
  serviceName?: string;
  serviceNamespace?: string;
  /** The addresses announced. */
  addresses?: string[];
  /** Interfaces the node answers on. */
  interfaces?: { name: string }[];
  observedGeneration?: number;
  conditions?: Condition[];
}

export interface ServiceL2Status {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: Record<string, never>;
  status?: ServiceL2StatusStatus;
}

/** Condition type: True when a node announces, False with the reason nobody does. */
export const L2ConditionAnnounced = 'Announced';
