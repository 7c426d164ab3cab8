// The jobs the `controller` command runs, in registration order.
import type { Job } from './job.js';

export const jobs: Job[] = [];
