// Reading the in-cluster manifests (config/, charts/switchboard): render a kustomization with kubectl or the chart
// with helm, parse YAML streams, find an object, and turn a container's args into the command line a test runs outside
// the cluster.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadAll } from 'js-yaml';
import type { Kubectl } from '../scenarios/env.js';

const execFileAsync = promisify(execFile);

export const repoPath = (relative: string): string => fileURLToPath(new URL(`../../${relative}`, import.meta.url));

/** A rendered object, as parsed from YAML (fields are read by path, so a loose shape is enough). */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  securityContext?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface PodTemplateOwner extends Manifest {
  spec: { replicas?: number; template: { metadata: { labels: Record<string, string> }; spec: { serviceAccountName?: string; containers: Container[]; [field: string]: unknown } }; [field: string]: unknown };
}

/** Manifests as text (to apply) and parsed (to check). */
export interface Rendered {
  text: string;
  objects: Manifest[];
}

export function parseYamlStream(text: string): Manifest[] {
  return loadAll(text).filter((doc): doc is Manifest => typeof doc === 'object' && doc !== null);
}

export function readYamlFile(relative: string): Manifest[] {
  return parseYamlStream(readFileSync(repoPath(relative), 'utf8'));
}

/** `kubectl kustomize <dir>`, parsed. */
export async function renderKustomization(kubectl: Kubectl, relativeDir: string): Promise<Rendered> {
  const out = await kubectl(['kustomize', repoPath(relativeDir)]);
  if (out.code !== 0) throw new Error(`kubectl kustomize ${relativeDir} failed:\n${out.stderr}`);
  return { text: out.stdout, objects: parseYamlStream(out.stdout) };
}

export function find<T extends Manifest = Manifest>(objects: readonly Manifest[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in the rendered manifests`);
  return found as T;
}

/** Expands $(VAR) references in a container's args as the kubelet does, from `values` (downward-API fields too). */
export function expandArgs(args: readonly string[], values: Record<string, string>): string[] {
  return args.map((arg) =>
    arg.replace(/\$\((\w+)\)/g, (whole, name: string) => {
      if (!(name in values)) throw new Error(`${arg}: no value for $(${name})`);
      return values[name];
    }),
  );
}

/** The value of `--name=value` in args, or undefined. */
export function flagValue(args: readonly string[], name: string): string | undefined {
  const prefix = `--${name}=`;
  return args.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

/**
 * Args with flags replaced: a string sets `--name=value` (in place when present, else appended), null removes it and
 * must find it (so a test notices when the manifests stop passing a flag it rewrites).
 */
export function withFlags(args: readonly string[], changes: Record<string, string | null>): string[] {
  const result: string[] = [];
  const seen = new Set<string>();
  for (const arg of args) {
    const name = /^--([^=]+)=/.exec(arg)?.[1];
    if (name === undefined || !(name in changes)) {
      result.push(arg);
      continue;
    }
    seen.add(name);
    const value = changes[name];
    if (value !== null) result.push(`--${name}=${value}`);
  }
  for (const [name, value] of Object.entries(changes)) {
    if (seen.has(name)) continue;
    if (value === null) throw new Error(`--${name} is not among the args to remove it from: ${args.join(' ')}`);
    result.push(`--${name}=${value}`);
  }
  return result;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; a non-zero exit is a result, not an error. */
export async function runCommand(command: string, args: readonly string[]): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await execFileAsync(command, [...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Runs helm with `args` and `values` (a values file's content) given as a values file. */
export async function runHelm(helm: string, args: readonly string[], values: Record<string, unknown> = {}): Promise<CommandResult> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-chart-'));
  try {
    const valuesFile = join(dir, 'values.json'); // JSON is YAML
    await writeFile(valuesFile, JSON.stringify(values));
    return await runCommand(helm, [...args, '--values', valuesFile]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `helm template` of charts/switchboard as release `release` in `namespace`, CRDs included, with `values`. */
export async function renderChart(helm: string, namespace: string, values: Record<string, unknown> = {}, release = 'switchboard'): Promise<Rendered> {
  const out = await runHelm(helm, ['template', release, repoPath('charts/switchboard'), '--namespace', namespace, '--include-crds'], values);
  if (out.code !== 0) throw new Error(`helm template failed:\n${out.stderr}`);
  return { text: out.stdout, objects: parseYamlStream(out.stdout) };
}
