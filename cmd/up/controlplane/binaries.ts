// Builds the real Kubernetes binaries (etcd, kube-apiserver, kube-controller-manager, kubectl; kube-proxy and
// CoreDNS for the traffic tests) and helm from their Go modules at pinned versions, into a cache outside the work
// tree, and reuses them.
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

/**
 * Built on demand in the same generated module, with a stamp of their own: adding them did not change the control
 * plane's stamp, so work trees with and without them share one cache without rebuilding each other's binaries.
 */
const DATAPLANE_PACKAGES: Record<string, string> = {
  'kube-proxy': 'k8s.io/kubernetes/cmd/kube-proxy',
};

/** The CoreDNS release whose go.mod pins client-go v0.34 (Kubernetes v1.34), built from its own module. */
export const COREDNS_VERSION = 'v1.13.1';

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

/** A generated module's tools.go: it only names the commands to build, so `go mod tidy` keeps their modules. */
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

/** A generated Go module and the commands built from it. */
interface GoModule {
  goMod: string;
  /** Every command the module names (its tools.go), so builds of some of them leave go.mod as the others need it. */
  tools: Record<string, string>;
  ldflags: string;
}

/** The module kube-apiserver and the other Kubernetes commands (kube-proxy included) are built from. */
const kubeModule = (): GoModule => ({ goMod: goModFile(), tools: { ...PACKAGES, ...DATAPLANE_PACKAGES }, ldflags: ldflags() });

function ldflags(): string {
  const [major, minor] = KUBERNETES_VERSION.replace(/^v/, '').split('.');
  const v = 'k8s.io/component-base/version';
  return `-s -w -X ${v}.gitVersion=${KUBERNETES_VERSION} -X ${v}.gitMajor=${major} -X ${v}.gitMinor=${minor} -X ${v}.gitTreeState=clean`;
}

function run(cmd: string, args: string[], cwd: string, log: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
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

/**
 * Returns the pinned binaries, building them first when the cache lacks them. The first build takes
 * minutes (progress goes to `log`); later calls only check a stamp file.
 */
export interface BuildOptions {
  /** The Go command ($SWITCHBOARD_GO or `go` on PATH). */
  go?: string;
  /** The cache root (see cacheRoot()). */
  cacheDir?: string;
}

export async function ensureBinaries(log: (line: string) => void = () => {}, options: BuildOptions = {}): Promise<Binaries> {
  const go = options.go ?? process.env.SWITCHBOARD_GO ?? 'go';
  const dir = kubeModuleDir(options);
  const bin = join(dir, 'bin');
  const binaries: Binaries = {
    etcd: join(bin, 'etcd'),
    kubeApiserver: join(bin, 'kube-apiserver'),
    kubeControllerManager: join(bin, 'kube-controller-manager'),
    kubectl: join(bin, 'kubectl'),
    dir: bin,
  };
  const stamp = JSON.stringify({ goMod: goModFile(), ldflags: ldflags(), packages: PACKAGES });
  await buildOnce(dir, '.stamp', stamp, Object.keys(PACKAGES), log, async () => {
    log(`Building etcd ${ETCD_VERSION} and Kubernetes ${KUBERNETES_VERSION} (kube-apiserver, kube-controller-manager, kubectl) from Go modules into ${bin}; the first build takes several minutes…`);
    await buildPackages(go, dir, kubeModule(), PACKAGES, log);
  });
  return binaries;
}

export interface DataplaneBinaries {
  kubeProxy: string;
  coredns: string;
}

/**
 * kube-proxy (from the control plane's generated module, at KUBERNETES_VERSION) and CoreDNS (COREDNS_VERSION, from
 * its own module with its own pins; `coredns: false` leaves it out), built on first use like ensureBinaries().
 */
export async function ensureDataplaneBinaries(log: (line: string) => void = () => {}, options: BuildOptions & { coredns?: boolean } = {}): Promise<DataplaneBinaries> {
  const go = options.go ?? process.env.SWITCHBOARD_GO ?? 'go';
  const kubeDir = kubeModuleDir(options);
  const kubeStamp = JSON.stringify({ goMod: goModFile(), ldflags: ldflags(), packages: DATAPLANE_PACKAGES });
  await buildOnce(kubeDir, '.stamp-dataplane', kubeStamp, Object.keys(DATAPLANE_PACKAGES), log, async () => {
    log(`Building kube-proxy ${KUBERNETES_VERSION} into ${join(kubeDir, 'bin')}…`);
    await buildPackages(go, kubeDir, kubeModule(), DATAPLANE_PACKAGES, log);
  });
  const corednsDir = join(options.cacheDir ?? cacheRoot(), `coredns-${COREDNS_VERSION}`);
  // Its first build is long (~5 CPU-minutes, 23 min on a busy 2-core machine): only for those that use it.
  if (options.coredns !== false) await buildOnce(corednsDir, '.stamp', JSON.stringify({ version: COREDNS_VERSION }), ['coredns'], log, async () => {
    log(`Building CoreDNS ${COREDNS_VERSION} into ${join(corednsDir, 'bin')}…`);
    // Outside any module: `go install pkg@version` builds with CoreDNS's own go.mod, as its releases are built.
    const tmp = join(corednsDir, 'bin.tmp');
    await rm(tmp, { recursive: true, force: true });
    await run(go, ['install', '-trimpath', '-ldflags', '-s -w', `github.com/coredns/coredns@${COREDNS_VERSION}`], corednsDir, log, { ...process.env, GOBIN: tmp, GOFLAGS: '' });
    await rename(join(tmp, 'coredns'), join(corednsDir, 'bin', 'coredns'));
  });
  return { kubeProxy: join(kubeDir, 'bin', 'kube-proxy'), coredns: join(corednsDir, 'bin', 'coredns') };
}

function kubeModuleDir(options: BuildOptions): string {
  return join(options.cacheDir ?? cacheRoot(), `kube-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}`);
}

/** Runs `build` under the directory's lock unless `<dir>/bin` already holds `names` and `stampName` says `stamp`. */
async function buildOnce(dir: string, stampName: string, stamp: string, names: string[], log: (line: string) => void, build: () => Promise<void>): Promise<void> {
  const bin = join(dir, 'bin');
  const stampFile = join(bin, stampName);
  const built = async (): Promise<boolean> =>
    names.every((name) => existsSync(join(bin, name))) && existsSync(stampFile) && (await readFile(stampFile, 'utf8')) === stamp;
  if (await built()) return;
  await mkdir(bin, { recursive: true });
  // Two processes building at once (parallel test runs on one machine) would race on go.mod and the output.
  const release = await buildLock(dir, log);
  try {
    if (await built()) return;
    const started = Date.now();
    await build();
    await writeFile(stampFile, stamp);
    log(`Built in ${Math.round((Date.now() - started) / 1000)} s.`);
  } finally {
    await release();
  }
}

/** Builds `packages` (name → Go package) from the generated `module` in `dir` into `<dir>/bin`. */
async function buildPackages(go: string, dir: string, module: GoModule, packages: Record<string, string>, log: (line: string) => void): Promise<void> {
  await writeFile(join(dir, 'go.mod'), module.goMod);
  await writeFile(join(dir, 'tools.go'), toolsFile(module.tools));
  await run(go, ['mod', 'tidy'], dir, log);
  const tmp = join(dir, 'bin.tmp');
  await mkdir(tmp, { recursive: true });
  await run(go, ['build', '-trimpath', '-ldflags', module.ldflags, '-o', tmp + '/', ...Object.values(packages)], dir, log);
  // `go build -o dir/` names each binary after the last element of its package path.
  for (const [name, pkg] of Object.entries(packages)) {
    await rename(join(tmp, pkg.split('/').filter((part) => !/^v\d+$/.test(part)).pop()!), join(dir, 'bin', name));
  }
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
  const go = options.go ?? process.env.SWITCHBOARD_GO ?? 'go';
  const dir = join(options.cacheDir ?? cacheRoot(), `helm-${HELM_VERSION}`);
  const packages = { helm: 'helm.sh/helm/v3/cmd/helm' };
  const module: GoModule = {
    goMod: ['module switchboard.local/helmbuild', '', 'go 1.24.0', '', `require helm.sh/helm/v3 ${HELM_VERSION}`, ''].join('\n'),
    tools: packages,
    ldflags: helmLdflags(),
  };
  await buildOnce(dir, '.stamp', JSON.stringify({ goMod: module.goMod, ldflags: module.ldflags, packages }), ['helm'], log, async () => {
    log(`Building helm ${HELM_VERSION} from Go modules into ${join(dir, 'bin')}; the first build takes a few minutes…`);
    await buildPackages(go, dir, module, packages, log);
  });
  return join(dir, 'bin', 'helm');
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
    if (waited % 30 === 0) log(`Waiting for another build of the control plane binaries (pid ${owner || '?'})…`);
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
