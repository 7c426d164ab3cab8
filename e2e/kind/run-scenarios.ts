// `node dist-test/e2e/kind/run-scenarios.js`: the shared end-to-end scenarios against the kind cluster run.sh deployed
// Switchboard to. Configured through the environment run.sh sets:
//   KUBECONFIG                  the kind cluster's kubeconfig
//   KUBECTL                     kubectl (default: kubectl on PATH)
//   SWITCHBOARD_IMAGE           the image run.sh built and loaded
//   SWITCHBOARD_E2E_LB_RANGE    LoadBalancer addresses on the kind network, e.g. 172.18.255.200-172.18.255.250
//   KIND_NETWORK                the kind Docker network (default: kind)
// Exits 1 when a scenario fails.
import { KubeClient } from '../../controllers/runtime/client.js';
import { runScenario, scenarios } from '../scenarios/scenarios.js';
import { kindEnv } from './kind-env.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`$${name} is not set (e2e/kind/run.sh sets it)`);
  return value;
}

async function main(): Promise<number> {
  const kubeconfig = required('KUBECONFIG');
  const client = KubeClient.fromFile(kubeconfig, 'switchboard-e2e');
  const log = (line: string) => console.log(line);
  const env = kindEnv({
    client,
    kubectl: process.env.KUBECTL || 'kubectl',
    kubeconfig,
    image: required('SWITCHBOARD_IMAGE'),
    network: process.env.KIND_NETWORK || 'kind',
    loadBalancerRange: required('SWITCHBOARD_E2E_LB_RANGE'),
    log,
  });
  const failed: string[] = [];
  for (const scenario of scenarios) {
    try {
      await runScenario(env, scenario);
      log(`PASS ${scenario.title}`);
    } catch (err) {
      failed.push(scenario.title);
      log(`FAIL ${scenario.title}\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
  client.close();
  log(failed.length === 0 ? `all ${scenarios.length} scenarios passed` : `${failed.length} of ${scenarios.length} scenarios failed:\n  ${failed.join('\n  ')}`);
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
