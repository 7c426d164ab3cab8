// A job is one of Switchboard's capabilities as the `controller` command runs it: its flags and how
// it registers its informers, controllers and runnables with the manager. cmd/jobs/index.ts lists them.
import type { Manager } from '../../controllers/runtime/manager.js';

export interface JobFlag {
  type: 'string' | 'boolean';
  default: string | boolean;
  help: string;
}

export type FlagValues = Record<string, string | boolean>;

export interface JobContext {
  /** Namespace of Switchboard's own namespaced objects (leases, webhook Service, …). */
  namespace: string;
}

export interface Job {
  name: string;
  flags: Record<string, JobFlag>;
  register(manager: Manager, flags: FlagValues, context: JobContext): void | Promise<void>;
}
