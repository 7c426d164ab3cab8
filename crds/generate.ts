// `npm run generate`: writes crds/*.yaml, and the same files into the Helm chart's crds/, from crds/manifests.ts.
// crds/crds.test.ts fails when a file differs from what renderCRD makes of its manifest. A development tool built into dist-test/ (it needs js-yaml, a devDependency), never
// shipped.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dump } from 'js-yaml';
import { crdManifests, type CustomResourceDefinition } from './manifests.js';

/** The Helm chart's CRD folder, relative to the repository root (Helm installs it before the templates). */
export const CHART_CRDS = 'charts/switchboard/crds/';

const HEADER = '# Generated from crds/manifests.ts: edit that file, then run `npm run generate`.\n';

/** A CRD manifest as its YAML file holds it. */
export function renderCRD(crd: CustomResourceDefinition): string {
  return HEADER + dump(crd, { lineWidth: 120, noRefs: true });
}

function generate(): void {
  // Run as dist-test/crds/generate.js: the YAML files live in the source tree's crds/.
  for (const dir of ['crds/', CHART_CRDS]) {
    const target = new URL(`../../${dir}`, import.meta.url);
    for (const [file, crd] of Object.entries(crdManifests)) {
      const path = fileURLToPath(new URL(file, target));
      writeFileSync(path, renderCRD(crd));
      console.log(`wrote ${path}`);
    }
  }
}

// Run as a program (npm run generate), not when the test imports renderCRD.
if (process.argv[1] === fileURLToPath(import.meta.url)) generate();
