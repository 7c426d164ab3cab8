import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, exitedOnTakenPort, freePort } from './processes.js';

describe('freePort', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    jest.restoreAllMocks();
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  it('picks below the ephemeral range and never the same port twice', async () => {
    const ports = [];
    for (let i = 0; i < 100; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(100);
    for (const p of ports) {
      expect(p).toBeGreaterThanOrEqual(20_000);
      expect(p).toBeLessThan(30_000);
    }
  });

  it('skips a port some server holds', async () => {
    // Pinned picks: 0.5 → 25000 (held below), 0.6 → 26000, unless this process handed either out already.
    const held = createServer();
    servers.push(held);
    await new Promise<void>((r) => held.listen(25_000, '127.0.0.1', r));
    jest.spyOn(Math, 'random').mockReturnValueOnce(0.5).mockReturnValueOnce(0.6);
    expect(await freePort()).toBe(26_000);
  });
});

describe('exitedOnTakenPort', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-processes-'));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const run = async (message: string) => {
    const proc = ManagedProcess.start('server', '/bin/sh', ['-c', `echo '${message}' >&2; exit 1`], join(dir, `${message.length}.log`));
    await proc.exited;
    // The log is written by a stream: wait for its last chunk.
    for (let i = 0; i < 100 && !proc.logTail().includes(message); i++) await new Promise((r) => setTimeout(r, 20));
    return exitedOnTakenPort(proc);
  };

  it('tells a taken port from other start-up failures', async () => {
    expect(await run('failed to listen on 127.0.0.1:20001: listen tcp 127.0.0.1:20001: bind: address already in use')).toBe(true);
    expect(await run('open /etc/kubernetes/pki/ca.crt: no such file or directory')).toBe(false);
  });
});
