// Builds the real Kubernetes binaries (etcd, kube-apiserver, kube-controller-manager, kubectl) and helm from
// their Go modules at pinned versions, into a cache outside the work tree, and reuses them.
// k8s.io/kubernetes is built as a dependency of a generated module: its own go.mod points the k8s.io/*
// staging modules at ./staging, so the generated module pins each of them to the matching v0.X.Y.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const KUBERNETES_VERSION = 'v1.34.4';
/** The etcd release Kubernetes v1.34 is built and tested with. */
export const ETCD_VERSION = 'v3.6.4';
/** The Helm release built on the same k8s.io v0.34 libraries as KUBERNETES_VERSION. */
export const HELM_VERSION = 'v3.19.5';

const STAGING_MODULES = [
  'api', 'apiextensions-apiserver', 'apimachinery', 'apiserver', 'cli-runtime', 'client-go',
  'cloud-provider', 'cluster-bootstrap', 'code-generator', 'component-base', 'component-helpers',
  'controller-manager', 'cri-api', 'cri-client', 'csi-translation-lib', 'dynamic-resource-allocation',
  'endpointslice', 'externaljwt', 'kms', 'kube-aggregator', 'kube-controller-manager', 'kube-proxy',
  'kube-scheduler', 'kubectl', 'kubelet', 'metrics', 'mount-utils', 'pod-security-admission',
  'sample-apiserver', 'sample-cli-plugin', 'sample-controller',
];

/** Binary name → Go package that builds it. */
const PACKAGES: Record<string, string> = {
  etcd: 'go.etcd.io/etcd/server/v3',
  'kube-apiserver': 'k8s.io/kubernetes/cmd/kube-apiserver',
  'kube-controller-manager': 'k8s.io/kubernetes/cmd/kube-controller-manager',
  kubectl: 'k8s.io/kubernetes/cmd/kubectl',
};

export interface Binaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  dir: string;
}

export function cacheRoot(): string {
  return process.env.SWITCHBOARD_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'switchboard');
}

function goModFile(): string {
  const minor = KUBERNETES_VERSION.replace(/^v1\./, 'v0.');
  return [
    'module switchboard.local/kubebuild',
    '',
    'go 1.24.0',
    '',
    'require (',
    `\tk8s.io/kubernetes ${KUBERNETES_VERSION}`,
    `\tgo.etcd.io/etcd/server/v3 ${ETCD_VERSION}`,
    ')',
    '',
    'replace (',
    ...STAGING_MODULES.map((m) => `\tk8s.io/${m} => k8s.io/${m} ${minor}`),
    ')',
    '',
  ].join('\n');
}

function toolsFile(packages: Record<string, string>): string {
  return [
    '//go:build tools',
    '',
    '// Package tools only names the commands to build; it is never compiled itself.',
    'package tools',
    '',
    'import (',
    ...Object.values(packages).map((p) => `\t_ "${p}"`),
    ')',
    '',
  ].join('\n');
}

function kubeLdflags(): string {
  const [major, minor] = KUBERNETES_VERSION.replace(/^v/, '').split('.');
  const v = 'k8s.io/component-base/version';
  return `-s -w -X ${v}.gitVersion=${KUBERNETES_VERSION} -X ${v}.gitMajor=${major} -X ${v}.gitMinor=${minor} -X ${v}.gitTreeState=clean`;
}

function run(cmd: string, args: string[], cwd: string, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const collect = (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const started = Date.now();
    const ticker = setInterval(() => log(`  … still running \`${cmd} ${args[0]}\` (${Math.round((Date.now() - started) / 1000)} s)`), 30_000);
    child.on('error', (err) => {
      clearInterval(ticker);
      reject(
        (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? new Error(`\`${cmd}\` was not found. Install Go 1.24 or newer (https://go.dev/doc/install, or apt-get install golang-go) to build the local control plane.`)
          : err,
      );
    });
    child.on('exit', (code) => {
      clearInterval(ticker);
      if (code === 0) resolve();
      else reject(new Error(`\`${cmd} ${args.join(' ')}\` failed with exit code ${code}:\n${tail}`));
    });
  });
}

export interface BuildOptions {
  /** The Go command ($SWITCHBOARD_GO or `go` on PATH). */
  go?: string;
  /** The cache root (see cacheRoot()). */
  cacheDir?: string;
}

/** One cached Go build: a generated module that requires the upstream ones, and the commands it builds. */
interface GoBuild {
  /** Folder under the cache root, named after the pinned versions. */
  name: string;
  goMod: string;
  /** Binary name → Go package that builds it. */
  packages: Record<string, string>;
  ldflags: string;
  /** What the log says is being built. */
  what: string;
}

/**
 * Returns the build's bin folder, building it first when the cache lacks it. The first build takes minutes
 * (progress goes to `log`); later calls only check a stamp file.
 */
async function ensureGoBuild(spec: GoBuild, log: (line: string) => void, options: BuildOptions): Promise<string> {
  const go = options.go ?? process.env.SWITCHBOARD_GO ?? 'go';
  const dir = join(options.cacheDir ?? cacheRoot(), spec.name);
  const bin = join(dir, 'bin');
  const stamp = JSON.stringify({ goMod: spec.goMod, ldflags: spec.ldflags, packages: spec.packages });
  const stampFile = join(bin, '.stamp');
  const all = Object.keys(spec.packages).map((name) => join(bin, name));
  const built = async (): Promise<boolean> =>
    all.every((p) => existsSync(p)) && existsSync(stampFile) && (await readFile(stampFile, 'utf8')) === stamp;
  if (await built()) return bin;

  await mkdir(bin, { recursive: true });
  // Two processes building at once (parallel test runs on one machine) would race on go.mod and the output.
  const release = await buildLock(dir, log);
  try {
    if (await built()) return bin;
    await build(go, spec, dir, bin, log);
    await writeFile(stampFile, stamp);
  } finally {
    await release();
  }
  return bin;
}

async function build(go: string, spec: GoBuild, dir: string, bin: string, log: (line: string) => void): Promise<void> {
  await writeFile(join(dir, 'go.mod'), spec.goMod);
  await writeFile(join(dir, 'tools.go'), toolsFile(spec.packages));
  const started = Date.now();
  log(`Building ${spec.what} from Go modules into ${bin}; the first build takes several minutes…`);
  await run(go, ['mod', 'tidy'], dir, log);
  const tmp = join(dir, 'bin.tmp');
  await mkdir(tmp, { recursive: true });
  await run(go, ['build', '-trimpath', '-ldflags', spec.ldflags, '-o', tmp + '/', ...Object.values(spec.packages)], dir, log);
  // `go build -o dir/` names each binary after the last element of its package path.
  for (const [name, pkg] of Object.entries(spec.packages)) {
    await rename(join(tmp, pkg.split('/').filter((part) => !/^v\d+$/.test(part)).pop()!), join(bin, name));
  }
  log(`Built in ${Math.round((Date.now() - started) / 1000)} s.`);
}

/** The pinned etcd and Kubernetes binaries, built first when the cache lacks them. */
export async function ensureBinaries(log: (line: string) => void = () => {}, options: BuildOptions = {}): Promise<Binaries> {
  const bin = await ensureGoBuild(
    {
      name: `kube-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}`,
      goMod: goModFile(),
      packages: PACKAGES,
      ldflags: kubeLdflags(),
      what: `etcd ${ETCD_VERSION} and Kubernetes ${KUBERNETES_VERSION} (kube-apiserver, kube-controller-manager, kubectl)`,
    },
    log,
    options,
  );
  return {
    etcd: join(bin, 'etcd'),
    kubeApiserver: join(bin, 'kube-apiserver'),
    kubeControllerManager: join(bin, 'kube-controller-manager'),
    kubectl: join(bin, 'kubectl'),
    dir: bin,
  };
}

/**
 * What helm's own Makefile stamps: its version, and the Kubernetes version `helm template` and `helm lint` assume
 * (the k8s.io libraries it is built on, 1.34: unstamped it would be 1.20).
 */
function helmLdflags(): string {
  const [major, minor] = KUBERNETES_VERSION.replace(/^v/, '').split('.');
  const stamps = {
    'internal/version.version': HELM_VERSION,
    'internal/version.gitTreeState': 'clean',
    'pkg/lint/rules.k8sVersionMajor': major,
    'pkg/lint/rules.k8sVersionMinor': minor,
    'pkg/chartutil.k8sVersionMajor': major,
    'pkg/chartutil.k8sVersionMinor': minor,
  };
  return ['-s -w', ...Object.entries(stamps).map(([name, value]) => `-X helm.sh/helm/v3/${name}=${value}`)].join(' ');
}

/** The pinned helm (charts/switchboard is linted, rendered and applied with it), built first when the cache lacks it. */
export async function ensureHelm(log: (line: string) => void = () => {}, options: BuildOptions = {}): Promise<string> {
  const bin = await ensureGoBuild(
    {
      name: `helm-${HELM_VERSION}`,
      goMod: ['module switchboard.local/helmbuild', '', 'go 1.24.0', '', `require helm.sh/helm/v3 ${HELM_VERSION}`, ''].join('\n'),
      packages: { helm: 'helm.sh/helm/v3/cmd/helm' },
      ldflags: helmLdflags(),
      what: `helm ${HELM_VERSION}`,
    },
    log,
    options,
  );
  return join(bin, 'helm');
}

/** Holds `<dir>/.build-lock` (a directory: mkdir is atomic) until released; a lock whose owner died is taken over. */
async function buildLock(dir: string, log: (line: string) => void): Promise<() => Promise<void>> {
  const lock = join(dir, '.build-lock');
  const ownerFile = join(lock, 'pid');
  for (let waited = 0; ; waited++) {
    try {
      await mkdir(lock);
      await writeFile(ownerFile, String(process.pid));
      return () => rm(lock, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(await readFile(ownerFile, 'utf8').catch(() => '0'));
    if (owner > 0 && !processAlive(owner)) {
      await rm(lock, { recursive: true, force: true });
      continue;
    }
    if (waited % 30 === 0) log(`Waiting for another build in ${dir} (pid ${owner || '?'})…`);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
