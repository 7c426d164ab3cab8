// The embedded default: `switchboard up --once` with no $KUBECONFIG starts its own control plane,
// runs the operator on it, says how to reach it with kubectl, and stops leaving nothing behind.
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { controlPlaneInfo, createNamespace, deleteNamespace, testClient } from '../e2e/jest/cluster.js';
import { replicaFlags, spawnSwitchboard, stopSwitchboard, waitForOutput } from '../e2e/jest/switchboard-process.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../dist/cmd/switchboard.js', import.meta.url));

describe('switchboard up', () => {
  it('runs on a local control plane when no KUBECONFIG is set', async () => {
    const env = { ...process.env };
    delete env.KUBECONFIG;
    const { stdout } = await run(process.execPath, [BIN, 'up', '--once'], { env, timeout: 240_000 });
    expect(stdout).toContain('No $KUBECONFIG: starting a local control plane');
    const kubeconfig = /export KUBECONFIG=(\S+)/.exec(stdout)?.[1];
    expect(kubeconfig).toBeDefined();
    expect(stdout).toContain('Stopped the local control plane.');
    // The demo's summary shows all four jobs.
    expect(stdout).toMatch(/EndpointSlices\s+svc\/web \(250 pods\)\s+3 slices of 100\+100\+50 endpoints/);
    expect(stdout).toMatch(/ep\/big \(1100 pods\)\s+1000 addresses, over-capacity: truncated/);
    expect(stdout).toContain('The Service "bad-port" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767');
    expect(stdout).toMatch(/svc\/web-nodeport\s+clusterIP 10\.96\.\d+\.\d+, nodePort 3\d{4}/);
    expect(stdout).toMatch(/svc\/web-lb\s+ingress 192\.0\.2\.\d+ \(pool demo-pool\)/);
    // Where it may (root, network namespaces, arping) a real speaker answers ARP for that address.
    if (process.getuid?.() === 0) expect(stdout).toMatch(/L2 speaker \(ARP\)\s+arping 192\.0\.2\.\d+\s+reply from ([0-9a-f]{2}:){5}[0-9a-f]{2} \(node-0's eth0\)/);
    else expect(stdout).toMatch(/L2 speaker \(ARP\).*skipped: /);
    // And requests go through a real kube-proxy and the speakers to a pod.
    if (process.getuid?.() === 0) {
      expect(stdout).toMatch(/Traffic \(LoadBalancer\)\s+curl http:\/\/<LB IP>\/ \(svc\/web-live\)\s+served by pod web-live-\d \(192\.0\.2\.\d+\)/);
      expect(stdout).toMatch(/Traffic \(ClusterIP\)\s+curl from node node-0 via kube-proxy\s+served by pod web-live-\d \(10\.96\.\d+\.\d+:80\)/);
    } else expect(stdout).toMatch(/Traffic \(LoadBalancer\).*skipped: /);
    expect(existsSync(kubeconfig!)).toBe(false); // its state directory is gone
  }, 300_000);

  it('prints usage for an unknown command and exits 2', async () => {
    await expect(run(process.execPath, [BIN, 'frobnicate'])).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('unknown command "frobnicate"') });
  });
});

describe('switchboard controller', () => {
  // Each job's on/off flag: the endpoint controllers' three, the LoadBalancer job's, and no --webhook-url for allocation.
  const EVERY_JOB_OFF = ['--endpointslice-controller=false', '--endpoints-controller=false', '--endpointslice-mirroring-controller=false', '--load-balancer-controller=false'];

  it('lists every job\'s on/off flag in its help', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'controller', '--help']);
    for (const flag of [...EVERY_JOB_OFF.map((f) => f.replace(/=false$/, '')), '--webhook-url']) expect(stdout).toContain(flag);
  });

  it('runs with every job turned off, logging no error', async () => {
    const client = testClient();
    const namespace = await createNamespace(client, 'jobs-off');
    const replica = spawnSwitchboard('jobs-off', [...replicaFlags(controlPlaneInfo().kubeconfig, namespace, 'jobs-off'), ...EVERY_JOB_OFF]);
    try {
      await waitForOutput(replica, '"starting controllers"');
    } finally {
      await stopSwitchboard(replica);
      await deleteNamespace(client, namespace);
      client.close();
    }
    expect(replica.child.exitCode).toBe(0);
    expect(replica.output.filter((line) => line.includes('"level":"error"'))).toEqual([]);
    expect(replica.output.some((line) => line.includes('LoadBalancer allocation is off'))).toBe(true);
  });
});
