// The jobs the `controller` command runs, in registration order.
import type { Job } from './job.js';
import { endpointsJob } from './endpoints.js';
import { loadBalancerJob } from './loadbalancer.js';
import { allocatorsJob } from './allocators.js';

export const jobs: Job[] = [endpointsJob, loadBalancerJob, allocatorsJob];
