// Reading the in-cluster manifests (config/): render a kustomization with kubectl, parse YAML streams, find an object,
// and turn a container's args into the command line a test runs outside the cluster.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadAll } from 'js-yaml';
import type { Kubectl } from '../scenarios/env.js';

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

export function parseYamlStream(text: string): Manifest[] {
  return loadAll(text).filter((doc): doc is Manifest => typeof doc === 'object' && doc !== null);
}

export function readYamlFile(relative: string): Manifest[] {
  return parseYamlStream(readFileSync(repoPath(relative), 'utf8'));
}

/** `kubectl kustomize <dir>`, parsed. */
export async function renderKustomization(kubectl: Kubectl, relativeDir: string): Promise<{ text: string; objects: Manifest[] }> {
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
