// The flags that make a webhook serve kube-apiserver only (the client certificate its admission configuration names),
// alike for the allocation webhooks (`--webhook-client-…`) and the pool webhook (`--pool-webhook-client-…`).
import { readFileSync } from 'node:fs';
import type { ClientAuthentication } from '../../controllers/runtime/webhook/server.js';
import type { FlagValues, JobFlag } from './job.js';

type ClientFlagName<P extends string> = `${P}-client-ca-file` | `${P}-client-names`;

export function clientAuthenticationFlags<P extends string>(prefix: P): Record<ClientFlagName<P>, JobFlag> {
  return {
    [`${prefix}-client-ca-file`]: {
      type: 'string',
      default: '',
      help: 'CA bundle (PEM file) of the client certificate kube-apiserver presents to webhooks; callers without one are denied. Empty: any caller is served',
    },
    [`${prefix}-client-names`]: { type: 'string', default: '', help: 'comma-separated common names or DNS SANs the client certificate must carry (empty: any of the CA)' },
  } as Record<ClientFlagName<P>, JobFlag>;
}

/**
 * The client authentication the flags ask for; undefined without a CA file. The CA is read once, at start: a CA
 * rotated on disk is trusted after a restart (a rollout).
 */
export function clientAuthenticationOf(values: FlagValues, prefix: string): ClientAuthentication | undefined {
  const caFlag = `${prefix}-client-ca-file`;
  const namesFlag = `${prefix}-client-names`;
  const caFile = String(values[caFlag] ?? '');
  const allowedNames = String(values[namesFlag] ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  if (!caFile) {
    if (allowedNames.length > 0) throw new Error(`--${namesFlag} needs --${caFlag}`);
    return undefined;
  }
  let caPem: string;
  try {
    caPem = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new Error(`--${caFlag}: ${(err as Error).message}`);
  }
  if (!caPem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`--${caFlag}: ${caFile} holds no PEM certificate`);
  return { caPem, allowedNames };
}
