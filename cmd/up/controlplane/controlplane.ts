// A real Kubernetes control plane on loopback: etcd + kube-apiserver (+ kube-controller-manager with
// the endpoint controllers Switchboard replaces turned off), with generated certificates, a kubeconfig,
// and a clean stop. Tests create Nodes and Pods through the API and set pod status themselves.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createCertificateAuthority, generateSigningKeyPair, issueCertificate, type CertificateAuthority, type KeyPairPem } from '../../../controllers/runtime/pki.js';
import { kubernetesServiceIP, parseServiceClusterIPRangeFlag } from '../../../allocators/service/ip-range.js';
import { ensureBinaries, type Binaries } from './binaries.js';
import { ManagedProcess, exitedOnTakenPort, freePort, sweepStale } from './processes.js';

const execFileAsync = promisify(execFile);

/** Controllers that would fight Switchboard or kubelet-less Nodes (they mark pods not ready, evict and GC them). */
export const REPLACED_CONTROLLERS = ['endpointslice-controller', 'endpoints-controller', 'endpointslice-mirroring-controller'];
export const KUBELETLESS_OFF = ['node-lifecycle-controller', 'taint-eviction-controller', 'pod-garbage-collector-controller', 'device-taint-eviction-controller'];
export const DEFAULT_KCM_CONTROLLERS = ['*', ...[...REPLACED_CONTROLLERS, ...KUBELETLESS_OFF].map((c) => `-${c}`)];

export interface ControlPlaneOptions {
  /** `--service-cluster-ip-range`; two comma-separated CIDRs make the cluster dual-stack. */
  serviceClusterIPRange?: string;
  serviceNodePortRange?: string;
  /** kube-controller-manager's `--controllers`, or false to run none. */
  kubeControllerManager?: string[] | false;
  extraApiServerArgs?: string[];
  log?: (line: string) => void;
}

/** The common name of the client certificate kube-apiserver presents to admission webhooks. */
export const WEBHOOK_CLIENT_NAME = 'kube-apiserver-webhook-client';

export interface ControlPlaneInfo {
  kubeconfig: string;
  /** The CA that signed the client certificate kube-apiserver presents to webhooks (named WEBHOOK_CLIENT_NAME). */
  webhookClientCAFile: string;
  server: string;
  dir: string;
  serviceClusterIPRange: string;
  serviceNodePortRange: string;
  kubectl: string;
}

function runtimeRoot(): string {
  return join(tmpdir(), 'switchboard-controlplane');
}

export class LocalControlPlane {
  private etcd?: ManagedProcess;
  private apiServer?: ManagedProcess;
  private readonly controllerManagers = new Map<string, ManagedProcess>();
  private dir = '';
  private ca?: CertificateAuthority;
  private binaries?: Binaries;
  private kcmCredentials?: KeyPairPem;
  private adminCredentials?: KeyPairPem;
  private etcdPort = 0;
  private etcdPeerPort = 0;
  private apiPort = 0;
  private readonly log: (line: string) => void;
  readonly serviceClusterIPRange: string;
  readonly serviceNodePortRange: string;

  constructor(private readonly options: ControlPlaneOptions = {}) {
    this.log = options.log ?? (() => {});
    this.serviceClusterIPRange = options.serviceClusterIPRange ?? '10.96.0.0/16';
    this.serviceNodePortRange = options.serviceNodePortRange ?? '30000-32767';
  }

  get info(): ControlPlaneInfo {
    return {
      kubeconfig: this.kubeconfig,
      webhookClientCAFile: join(this.dir, 'ca.crt'),
      server: this.server,
      dir: this.dir,
      serviceClusterIPRange: this.serviceClusterIPRange,
      serviceNodePortRange: this.serviceNodePortRange,
      kubectl: this.binaries?.kubectl ?? 'kubectl',
    };
  }

  get kubeconfig(): string {
    return join(this.dir, 'admin.kubeconfig');
  }

  get server(): string {
    return `https://127.0.0.1:${this.apiPort}`;
  }

  /** The running kube-apiserver's pid (for benchmarks that read its CPU time). */
  get apiServerPid(): number | undefined {
    return this.apiServer?.pid;
  }

  get etcdEndpoint(): string {
    return `http://127.0.0.1:${this.etcdPort}`;
  }

  async start(): Promise<this> {
    const started = Date.now();
    this.binaries = await ensureBinaries(this.log);
    const root = runtimeRoot();
    await mkdir(root, { recursive: true });
    sweepStale(root);
    this.dir = await mkdtemp(join(root, 'cp-'));
    await writeFile(join(this.dir, 'owner.pid'), String(process.pid));
    try {
      await this.startServers();
      if (this.options.kubeControllerManager !== false) {
        await this.startControllerManager('kcm', this.options.kubeControllerManager ?? DEFAULT_KCM_CONTROLLERS);
      }
    } catch (err) {
      // Whatever did start must not outlive the failure (a test runner waits for its children's pipes).
      await this.stop();
      throw err;
    }
    this.log(`Control plane ready at ${this.server} in ${((Date.now() - started) / 1000).toFixed(1)} s (kubeconfig ${this.kubeconfig}).`);
    return this;
  }

  /** etcd and kube-apiserver on fresh ports; again on others (up to 3 times) when one exits because its port was taken. */
  private async startServers(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.etcdPort = await freePort();
      this.etcdPeerPort = await freePort();
      this.apiPort = await freePort();
      await this.writeCredentials();
      try {
        await this.startEtcd();
        await this.startApiServer();
        return;
      } catch (err) {
        const taken = [this.etcd, this.apiServer].some((p) => p !== undefined && exitedOnTakenPort(p));
        if (!taken || attempt === 3) throw err;
        this.log(`A port was taken while the control plane started (attempt ${attempt}); starting again on others.`);
        await this.apiServer?.stop();
        await this.etcd?.stop();
        this.apiServer = undefined;
        this.etcd = undefined;
        await rm(join(this.dir, 'etcd-data'), { recursive: true, force: true });
      }
    }
  }

  private async writeCredentials(): Promise<void> {
    this.ca = await createCertificateAuthority('switchboard-local-ca');
    const serving = await issueCertificate(this.ca, {
      commonName: 'kube-apiserver',
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
      ipAddresses: ['127.0.0.1', kubernetesClusterIP(this.serviceClusterIPRange)],
      usage: 'server',
    });
    const admin = await issueCertificate(this.ca, { commonName: 'switchboard-admin', organizations: ['system:masters'], usage: 'client' });
    // system:masters: without --use-service-account-credentials every controller acts as this one user.
    const kcm = await issueCertificate(this.ca, { commonName: 'system:kube-controller-manager', organizations: ['system:masters'], usage: 'client' });
    // Presented to every admission webhook, so that Switchboard's can tell the API server from forged callers.
    const webhookClient = await issueCertificate(this.ca, { commonName: WEBHOOK_CLIENT_NAME, usage: 'client' });
    const sa = await generateSigningKeyPair();
    const files: Record<string, string> = {
      'ca.crt': this.ca.certPem,
      'ca.key': this.ca.keyPem,
      'apiserver.crt': serving.certPem,
      'apiserver.key': serving.keyPem,
      'admin.crt': admin.certPem,
      'admin.key': admin.keyPem,
      'sa.key': sa.privateKeyPem,
      'sa.pub': sa.publicKeyPem,
    };
    for (const [name, content] of Object.entries(files)) await writeFile(join(this.dir, name), content, { mode: 0o600 });
    await writeFile(this.kubeconfig, kubeconfigFor('switchboard-admin', this.ca.certPem, admin, this.server), { mode: 0o600 });
    await writeFile(join(this.dir, 'webhook-client.kubeconfig'), webhookClientKubeconfig(webhookClient), { mode: 0o600 });
    await writeFile(join(this.dir, 'admission-config.json'), admissionConfiguration(join(this.dir, 'webhook-client.kubeconfig')));
    this.kcmCredentials = kcm;
    this.adminCredentials = admin;
  }

  private async startEtcd(): Promise<void> {
    const peer = `http://127.0.0.1:${this.etcdPeerPort}`;
    this.etcd = ManagedProcess.start('etcd', this.binaries!.etcd, [
      '--name=switchboard',
      `--data-dir=${join(this.dir, 'etcd-data')}`,
      `--listen-client-urls=${this.etcdEndpoint}`,
      `--advertise-client-urls=${this.etcdEndpoint}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=switchboard=${peer}`,
      '--unsafe-no-fsync', // test data only: fsync would dominate start-up on shared disks
      '--log-level=warn',
    ], join(this.dir, 'etcd.log'));
    await this.waitFor(this.etcd, () => httpGetOk(`${this.etcdEndpoint}/health`), 30_000);
  }

  /** Starts kube-apiserver (again, after `stopApiServer`) on the same port and etcd. */
  async startApiServer(): Promise<void> {
    const d = this.dir;
    this.apiServer = ManagedProcess.start('kube-apiserver', this.binaries!.kubeApiserver, [
      `--etcd-servers=${this.etcdEndpoint}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.apiPort}`,
      `--cert-dir=${join(d, 'apiserver-certs')}`,
      `--tls-cert-file=${join(d, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(d, 'apiserver.key')}`,
      `--client-ca-file=${join(d, 'ca.crt')}`,
      `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
      `--service-account-key-file=${join(d, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(d, 'sa.key')}`,
      `--service-cluster-ip-range=${this.serviceClusterIPRange}`,
      `--service-node-port-range=${this.serviceNodePortRange}`,
      '--authorization-mode=RBAC',
      '--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook',
      `--admission-control-config-file=${join(d, 'admission-config.json')}`,
      // Without kubelets no one mints the default ServiceAccount token volume; tests make pods directly.
      '--disable-admission-plugins=ServiceAccount',
      // The `kubernetes` Endpoints would list 127.0.0.1, which Endpoints validation rejects.
      '--endpoint-reconciler-type=none',
      '--allow-privileged=true',
      '--profiling=false',
      '--v=1',
      ...(this.options.extraApiServerArgs ?? []),
    ], join(d, 'kube-apiserver.log'));
    await this.waitFor(this.apiServer, () => this.apiGetOk('/readyz'), 90_000);
  }

  async stopApiServer(): Promise<void> {
    await this.apiServer?.stop();
  }

  async restartApiServer(): Promise<void> {
    await this.stopApiServer();
    await this.startApiServer();
  }

  /**
   * Stops etcd and starts it again on the same ports and data directory; kube-apiserver stays up, reconnects, and
   * this resolves once it is ready again.
   */
  async restartEtcd(): Promise<void> {
    await this.etcd?.stop();
    await this.startEtcd();
    if (this.apiServer) await this.waitFor(this.apiServer, () => this.apiGetOk('/readyz'), 90_000);
  }

  /** Starts a kube-controller-manager named `name` running `controllers`, e.g. for differential tests. */
  async startControllerManager(name: string, controllers: string[], extraArgs: string[] = []): Promise<ManagedProcess> {
    const d = this.dir;
    const kubeconfig = join(d, `${name}.kubeconfig`);
    await writeFile(kubeconfig, kubeconfigFor('system:kube-controller-manager', this.ca!.certPem, this.kcmCredentials!, this.server), { mode: 0o600 });
    const kcm = ManagedProcess.start(`kube-controller-manager/${name}`, this.binaries!.kubeControllerManager, [
      `--kubeconfig=${kubeconfig}`,
      `--controllers=${controllers.join(',')}`,
      '--secure-port=0',
      '--leader-elect=false',
      `--service-account-private-key-file=${join(d, 'sa.key')}`,
      `--root-ca-file=${join(d, 'ca.crt')}`,
      `--cluster-signing-cert-file=${join(d, 'ca.crt')}`,
      `--cluster-signing-key-file=${join(d, 'ca.key')}`,
      `--service-cluster-ip-range=${this.serviceClusterIPRange}`,
      '--v=1',
      ...extraArgs,
    ], join(d, `${name}.log`));
    this.controllerManagers.set(name, kcm);
    // It has no health endpoint with --secure-port=0: give it a moment, then insist it is still up.
    await new Promise((r) => setTimeout(r, 1000));
    if (!kcm.running) throw new Error(`${kcm.name} exited at start:\n${kcm.logTail()}`);
    return kcm;
  }

  async stopControllerManager(name: string): Promise<void> {
    await this.controllerManagers.get(name)?.stop();
    this.controllerManagers.delete(name);
  }

  /** Compacts etcd's history up to its current revision, so watches from older resourceVersions expire. */
  async compactEtcd(): Promise<number> {
    const range = await httpPostJson(`${this.etcdEndpoint}/v3/kv/range`, { key: Buffer.from('/').toString('base64') });
    const revision = Number((range as { header: { revision: string } }).header.revision);
    await httpPostJson(`${this.etcdEndpoint}/v3/kv/compaction`, { revision: String(revision), physical: true });
    return revision;
  }

  /** Runs the pinned kubectl against this control plane; resolves with its output even on failure. */
  async kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const child = execFileAsync(this.binaries!.kubectl, [`--kubeconfig=${this.kubeconfig}`, ...args], { encoding: 'utf8' });
    if (input !== undefined) {
      child.child.stdin?.end(input);
    }
    try {
      const { stdout, stderr } = await child;
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  async stop(): Promise<void> {
    for (const kcm of this.controllerManagers.values()) await kcm.stop();
    this.controllerManagers.clear();
    await this.apiServer?.stop();
    await this.etcd?.stop();
    if (this.dir && !process.env.SWITCHBOARD_KEEP_CONTROLPLANE) await rm(this.dir, { recursive: true, force: true });
  }

  private async waitFor(proc: ManagedProcess, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!proc.running) throw new Error(`${proc.name} exited during start-up:\n${proc.logTail()}`);
      if (await ready().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${proc.name} was not ready within ${timeoutMs / 1000} s:\n${proc.logTail()}`);
  }

  private apiGetOk(path: string): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request(
        `${this.server}${path}`,
        {
          ca: this.ca!.certPem,
          cert: this.adminCredentials!.certPem,
          key: this.adminCredentials!.keyPem,
          timeout: 2000,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        },
      );
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
      req.end();
    });
  }
}

/** The `kubernetes` Service's ClusterIP, which the apiserver's serving certificate must name. */
function kubernetesClusterIP(ranges: string): string {
  const ip = kubernetesServiceIP(parseServiceClusterIPRangeFlag(ranges)[0]);
  if (!ip) throw new Error(`--service-cluster-ip-range=${ranges} has no usable address`);
  return ip;
}

function kubeconfigFor(user: string, caPem: string, creds: KeyPairPem, server: string): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  // JSON is YAML, and both kubectl and @kubernetes/client-node read it.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'local', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
      users: [{ name: user, user: { 'client-certificate-data': b64(creds.certPem), 'client-key-data': b64(creds.keyPem) } }],
      contexts: [{ name: 'local', context: { cluster: 'local', user } }],
      'current-context': 'local',
    },
    null,
    2,
  );
}

/**
 * The credentials kube-apiserver presents to admission webhooks: user "*" matches every webhook host (they are all
 * on loopback here, on ports chosen at run time).
 */
function webhookClientKubeconfig(creds: KeyPairPem): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return JSON.stringify({ apiVersion: 'v1', kind: 'Config', users: [{ name: '*', user: { 'client-certificate-data': b64(creds.certPem), 'client-key-data': b64(creds.keyPem) } }] }, null, 2);
}

/** The AdmissionConfiguration pointing both webhook admission plugins at `kubeconfigPath`. */
function admissionConfiguration(kubeconfigPath: string): string {
  const webhook = { apiVersion: 'apiserver.config.k8s.io/v1', kind: 'WebhookAdmissionConfiguration', kubeConfigFile: kubeconfigPath };
  return JSON.stringify(
    {
      apiVersion: 'apiserver.config.k8s.io/v1',
      kind: 'AdmissionConfiguration',
      plugins: ['ValidatingAdmissionWebhook', 'MutatingAdmissionWebhook'].map((name) => ({ name, configuration: webhook })),
    },
    null,
    2,
  );
}

function httpGetOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function httpPostJson(url: string, body: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (c: Buffer) => (data += c.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(data)) : reject(new Error(`${url}: ${res.statusCode} ${data}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
