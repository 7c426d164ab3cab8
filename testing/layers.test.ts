// The one-way import rule of the README's map: api ← crds ← runtime ← allocators ← controllers ← cmd. A product file
// may import its own layer or a lower one, never a higher one, and never test support (testing/, e2e/, bench/, tests).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), '..'));

/** Product layers, lowest first; the first prefix that matches a path names its layer. */
const LAYERS: readonly { name: string; prefix: string }[] = [
  { name: 'api', prefix: 'api/' },
  { name: 'crds', prefix: 'crds/' },
  { name: 'runtime', prefix: 'controllers/runtime/' },
  { name: 'allocators', prefix: 'allocators/' },
  { name: 'controllers', prefix: 'controllers/' },
  { name: 'cmd', prefix: 'cmd/' },
];
const TEST_SUPPORT = ['testing/', 'e2e/', 'bench/'];

const isTest = (path: string): boolean => /\.test\.ts$/.test(path);
const layerOf = (path: string): number => LAYERS.findIndex((l) => path.startsWith(l.prefix));

function sourceFiles(dir = ROOT, found: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('dist') || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sourceFiles(path, found);
    else if (/\.(ts|mts|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) found.push(relative(ROOT, path));
  }
  return found;
}

/** Relative module specifiers of static imports, re-exports and dynamic imports, resolved against the repo root. */
function importsOf(file: string, source: string): string[] {
  const specifiers = [...source.matchAll(/(?:^|[\s;])(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|^import\s+['"]([^'"]+)['"]/gm)]
    .map((m) => m[1] ?? m[2] ?? m[3])
    .filter((s): s is string => s !== undefined && s.startsWith('.'));
  return specifiers.map((s) => normalize(join(dirname(file), s)).replace(/\.js$/, '.ts'));
}

/** Every import that points against the rule, as "from → to (why)". */
function violations(files: readonly string[], read: (file: string) => string): string[] {
  const found: string[] = [];
  for (const file of files) {
    const layer = layerOf(file);
    if (layer < 0 || isTest(file)) continue; // test support may import anything
    for (const target of importsOf(file, read(file))) {
      if (isTest(target) || TEST_SUPPORT.some((p) => target.startsWith(p))) {
        found.push(`${file} → ${target} (product imports test support)`);
        continue;
      }
      const targetLayer = layerOf(target);
      if (targetLayer > layer) found.push(`${file} → ${target} (${LAYERS[layer]?.name} imports ${LAYERS[targetLayer]?.name})`);
    }
  }
  return found;
}

describe('import direction', () => {
  const files = sourceFiles();

  it('finds the product layers and their imports', () => {
    for (const layer of LAYERS) expect(files.some((f) => f.startsWith(layer.prefix))).toBe(true);
    expect(importsOf('cmd/switchboard.ts', readFileSync(join(ROOT, 'cmd/switchboard.ts'), 'utf8'))).toContain('controllers/runtime/manager.ts');
  });

  it('has no import against the direction api ← crds ← runtime ← allocators ← controllers ← cmd', () => {
    expect(violations(files, (f) => readFileSync(join(ROOT, f), 'utf8'))).toEqual([]);
  });

  it('builds only product code into dist/ (tsconfig.build.json): no test, fixture or tool', () => {
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const config = execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--showConfig'], { encoding: 'utf8' });
    const built = (JSON.parse(config) as { files: string[] }).files.map((f) => normalize(f));
    expect(built).toContain('cmd/switchboard.ts');
    expect(built.filter((f) => isTest(f) || layerOf(f) < 0 || f === 'crds/generate.ts')).toEqual([]);
  });

  it('catches an upward import, a dynamic one and an import of test support', () => {
    const sources: Record<string, string> = {
      'api/x.ts': "import { a } from '../controllers/runtime/client.js';\n",
      'allocators/y.ts': "const m = await import('../cmd/switchboard.js');\n",
      'controllers/z.ts': "export { f } from '../testing/lb.js';\nimport type { T } from '../api/wire.js';\n",
      'cmd/ok.test.ts': "import { x } from '../testing/lb.js';\n",
    };
    expect(violations(Object.keys(sources), (f) => sources[f] ?? '')).toEqual([
      'api/x.ts → controllers/runtime/client.ts (api imports runtime)',
      'allocators/y.ts → cmd/switchboard.ts (allocators imports cmd)',
      'controllers/z.ts → testing/lb.ts (product imports test support)',
    ]);
  });
});
