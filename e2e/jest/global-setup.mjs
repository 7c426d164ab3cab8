// One real control plane per integration run; tests find it through SWITCHBOARD_TEST_CONTROLPLANE.
// Jest loads global setup outside its module system, so this imports the compiled harness
// (`npm test` builds first).
import { existsSync } from 'node:fs';

const harness = new URL('../../dist/cmd/up/controlplane/controlplane.js', import.meta.url);

export default async function globalSetup() {
  if (!existsSync(harness)) throw new Error('dist/ is missing: run `npm run build` (npm test does it for you)');
  const { LocalControlPlane } = await import(harness.href);
  const started = Date.now();
  const controlPlane = new LocalControlPlane({ log: (line) => process.stderr.write(`[control plane] ${line}\n`) });
  await controlPlane.start();
  globalThis.__switchboardControlPlane = controlPlane;
  process.env.SWITCHBOARD_TEST_CONTROLPLANE = JSON.stringify(controlPlane.info);
  process.stderr.write(`[control plane] shared control plane up in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
