// config/default through the deployment suite (e2e/deploy/deployment-suite.ts): rendered with the pinned kubectl's
// kustomize, applied to a control plane of its own, the controller and speaker run under its ServiceAccounts with
// no request refused. The kind suite's overlay (webhook client authentication) is a variant whose flags are checked.
import { expect } from '@jest/globals';
import { describeDeployment } from './deployment-suite.js';
import { find, flagValue, renderKustomization, type PodTemplateOwner } from './manifests.js';

describeDeployment({
  title: 'config/default',
  render: (cp) => renderKustomization((args, input) => cp.kubectl(args, input), 'config/default'),
  async variants(cp) {
    const withClientAuthentication = await renderKustomization((args, input) => cp.kubectl(args, input), 'e2e/kind/deploy');
    const args = find<PodTemplateOwner>(withClientAuthentication.objects, 'Deployment', 'switchboard-controller').spec.template.spec.containers[0].args ?? [];
    expect(flagValue(args, 'webhook-client-ca-file')).toBe(flagValue(args, 'pool-webhook-client-ca-file'));
    return [{ name: 'e2e/kind/deploy (client authentication)', objects: withClientAuthentication.objects }];
  },
});
