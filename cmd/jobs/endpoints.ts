// The endpoint controllers as a job: EndpointSlice, Endpoints and EndpointSlice mirroring. Flag names and defaults
// are kube-controller-manager's, so Switchboard drops in where KCM runs with
// --controllers=*,-endpointslice-controller,-endpoints-controller,-endpointslice-mirroring-controller; the
// managed-by flags let both run side by side in one cluster (give Switchboard other values).
import type { Manager } from '../../controllers/runtime/manager.js';
import { EndpointSliceController } from '../../controllers/endpointslice/controller.js';
import { EndpointsController } from '../../controllers/endpoints/controller.js';
import { MirroringController } from '../../controllers/endpointslice-mirroring/controller.js';
import {
  DEFAULT_ENDPOINTSLICE_MANAGED_BY,
  DEFAULT_ENDPOINTS_MANAGED_BY,
  DEFAULT_MAX_ENDPOINTS_PER_SLICE,
  DEFAULT_MAX_ENDPOINTS_PER_SUBSET,
  MAX_ENDPOINTS_PER_SLICE_LIMIT,
  DEFAULT_MIRRORING_MANAGED_BY,
} from '../../controllers/endpointutil/constants.js';
import { EndpointCaches } from '../../controllers/endpointwiring/informers.js';
import { parseBool, parseDuration } from '../flags.js';
import type { FlagValues, Job, JobFlag } from './job.js';

const flag = (value: string | number, help: string): JobFlag => ({ type: 'string', default: String(value), help });

const flags = {
  'endpointslice-controller': flag('true', 'run the EndpointSlice controller'),
  'endpoints-controller': flag('true', 'run the (legacy) Endpoints controller'),
  'endpointslice-mirroring-controller': flag('true', 'run the EndpointSlice mirroring controller'),
  'max-endpoints-per-slice': flag(DEFAULT_MAX_ENDPOINTS_PER_SLICE, 'most endpoints in one EndpointSlice (1..1000)'),
  'concurrent-service-endpoint-syncs': flag(5, 'Services the EndpointSlice controller syncs at once (1..50)'),
  'endpointslice-updates-batch-period': flag('0s', 'delay of pod-triggered EndpointSlice syncs, to batch changes'),
  'endpointslice-managed-by': flag(
    DEFAULT_ENDPOINTSLICE_MANAGED_BY,
    'endpointslice.kubernetes.io/managed-by value of the EndpointSlices it writes (another value runs beside kube-controller-manager)',
  ),
  'concurrent-endpoint-syncs': flag(5, 'Services the Endpoints controller syncs at once (1..50)'),
  'endpoint-updates-batch-period': flag('0s', 'delay of pod-triggered Endpoints syncs, to batch changes'),
  'endpoints-managed-by': flag(DEFAULT_ENDPOINTS_MANAGED_BY, 'endpoints.kubernetes.io/managed-by label on Endpoints; empty leaves it off'),
  'mirroring-max-endpoints-per-subset': flag(DEFAULT_MAX_ENDPOINTS_PER_SUBSET, 'most addresses mirrored per Endpoints subset (1..1000)'),
  'mirroring-concurrent-service-endpoint-syncs': flag(5, 'Endpoints the mirroring controller syncs at once (1..50)'),
  'mirroring-endpointslice-updates-batch-period': flag('0s', 'delay of slice-triggered mirroring syncs, to batch changes'),
  'mirroring-managed-by': flag(DEFAULT_MIRRORING_MANAGED_BY, 'endpointslice.kubernetes.io/managed-by value of mirrored EndpointSlices'),
  'endpoint-controllers-namespace': flag('', 'only this namespace (empty: all); for tests and trials'),
};

type FlagName = keyof typeof flags;

export interface EndpointsJobConfig {
  namespace: string;
  endpointSlice?: { managedBy: string; maxEndpointsPerSlice: number; workers: number; batchPeriodMs: number };
  endpoints?: { managedBy: string | null; workers: number; batchPeriodMs: number };
  mirroring?: { managedBy: string; maxEndpointsPerSubset: number; workers: number; batchPeriodMs: number };
}

/** A label value, as the API validates it: the API would refuse every object carrying a bad one. */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function integer(value: string, flag: string, min: number, max: number): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new Error(`--${flag}: must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

function labelValue(value: string, flag: string, allowEmpty: boolean): string {
  if ((!allowEmpty && value === '') || value.length > 63 || !LABEL_VALUE.test(value)) {
    throw new Error(`--${flag}: "${value}" is not a valid label value (1-63 characters: letters, digits, '-', '_', '.', alphanumeric at both ends)`);
  }
  return value;
}

/** Checks and converts the job's flags; throws an Error naming the flag on a bad value. */
export function parseEndpointsJobFlags(values: FlagValues): EndpointsJobConfig {
  const get = (name: FlagName) => String(values[name] ?? flags[name].default);
  const on = (name: FlagName) => parseBool(get(name), name);
  const count = (name: FlagName, max: number) => integer(get(name), name, 1, max);
  const label = (name: FlagName, allowEmpty = false) => labelValue(get(name), name, allowEmpty);
  // --concurrent-…-syncs and the batch period of one controller's queue.
  const queue = (workers: FlagName, batchPeriod: FlagName) => ({ workers: count(workers, 50), batchPeriodMs: parseDuration(get(batchPeriod), batchPeriod) });
  const config: EndpointsJobConfig = { namespace: get('endpoint-controllers-namespace') };
  if (on('endpointslice-controller')) {
    const maxEndpointsPerSlice = count('max-endpoints-per-slice', MAX_ENDPOINTS_PER_SLICE_LIMIT);
    config.endpointSlice = { managedBy: label('endpointslice-managed-by'), maxEndpointsPerSlice, ...queue('concurrent-service-endpoint-syncs', 'endpointslice-updates-batch-period') };
  }
  if (on('endpoints-controller')) {
    config.endpoints = { managedBy: label('endpoints-managed-by', true) || null, ...queue('concurrent-endpoint-syncs', 'endpoint-updates-batch-period') };
  }
  if (on('endpointslice-mirroring-controller')) {
    const maxEndpointsPerSubset = count('mirroring-max-endpoints-per-subset', MAX_ENDPOINTS_PER_SLICE_LIMIT);
    config.mirroring = { managedBy: label('mirroring-managed-by'), maxEndpointsPerSubset, ...queue('mirroring-concurrent-service-endpoint-syncs', 'mirroring-endpointslice-updates-batch-period') };
  }
  // Each controller deletes the slices it manages that it does not want: one value for both would make them fight.
  if (config.endpointSlice && config.mirroring && config.endpointSlice.managedBy === config.mirroring.managedBy) {
    throw new Error(`--endpointslice-managed-by and --mirroring-managed-by must differ (both are "${config.mirroring.managedBy}")`);
  }
  return config;
}

export interface EndpointControllers {
  endpointSlice?: EndpointSliceController;
  endpoints?: EndpointsController;
  mirroring?: MirroringController;
}

export function registerEndpointControllers(manager: Manager, config: EndpointsJobConfig): EndpointControllers {
  const caches = new EndpointCaches(manager, config.namespace);
  const controllers: EndpointControllers = {};
  if (config.endpointSlice) controllers.endpointSlice = new EndpointSliceController(manager, caches, config.endpointSlice);
  if (config.endpoints) controllers.endpoints = new EndpointsController(manager, caches, config.endpoints);
  if (config.mirroring) controllers.mirroring = new MirroringController(manager, caches, config.mirroring);
  manager.log.info('endpoint controllers registered', {
    endpointSlice: config.endpointSlice ?? false,
    endpoints: config.endpoints ?? false,
    mirroring: config.mirroring ?? false,
    namespace: config.namespace || '(all)',
  });
  return controllers;
}

export const endpointsJob: Job = {
  name: 'endpoints',
  flags,
  register(manager, values) {
    registerEndpointControllers(manager, parseEndpointsJobFlags(values));
  },
};
