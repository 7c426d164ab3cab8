import { afterEach, describe, expect, it } from '@jest/globals';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, ensureDataplaneBinaries } from './binaries.js';

describe('ensureBinaries', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('says what to install when Go is missing', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-nogo-'));
    // An empty cache forces a build; the Go command does not exist.
    await expect(ensureBinaries(() => {}, { cacheDir: dir, go: join(dir, 'bin', 'go') })).rejects.toThrow(/was not found\. Install Go 1\.24 or newer/);
  });

  it('builds once when two processes ask at the same time', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-twobuilds-'));
    // A stand-in for Go that fails if two invocations overlap and writes one file per package on `build -o dir/`.
    const go = join(dir, 'fake-go');
    writeFileSync(
      go,
      `#!/bin/sh
mkdir "${dir}/running" 2>/dev/null || { echo overlap >> "${dir}/log"; exit 1; }
echo "$1" >> "${dir}/log"
sleep 0.3
if [ "$1" = build ]; then
  out=""; for a in "$@"; do case "$a" in */) out="$a";; esac; done
  for a in "$@"; do case "$a" in *.*/*) n=$(echo "$a" | tr / '\\n' | grep -v '^v[0-9]*$' | tail -1); touch "$out$n";; esac; done
fi
rmdir "${dir}/running"
`,
    );
    chmodSync(go, 0o755);
    const cacheDir = join(dir, 'cache');
    const [a, b] = await Promise.all([ensureBinaries(() => {}, { cacheDir, go }), ensureBinaries(() => {}, { cacheDir, go })]);
    expect(a).toEqual(b);
    expect(readFileSync(join(dir, 'log'), 'utf8').trim().split('\n')).toEqual(['mod', 'build']);
  });

  it('builds kube-proxy and CoreDNS once each, without invalidating the control plane binaries', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-dataplanebuild-'));
    // Records each command; `build -o dir/` writes one file per package, `install` one per module into $GOBIN.
    const go = join(dir, 'fake-go');
    writeFileSync(
      go,
      `#!/bin/sh
echo "$1" >> "${dir}/log"
if [ "$1" = build ]; then
  out=""; for a in "$@"; do case "$a" in */) out="$a";; esac; done
  for a in "$@"; do case "$a" in *.*/*) n=$(echo "$a" | tr / '\\n' | grep -v '^v[0-9]*$' | tail -1); touch "$out$n";; esac; done
fi
if [ "$1" = install ]; then mkdir -p "$GOBIN" && touch "$GOBIN/coredns"; fi
`,
    );
    chmodSync(go, 0o755);
    const cacheDir = join(dir, 'cache');
    await ensureBinaries(() => {}, { cacheDir, go });
    const first = await ensureDataplaneBinaries(() => {}, { cacheDir, go });
    expect(await ensureDataplaneBinaries(() => {}, { cacheDir, go })).toEqual(first);
    await ensureBinaries(() => {}, { cacheDir, go });
    expect(readFileSync(join(dir, 'log'), 'utf8').trim().split('\n')).toEqual(['mod', 'build', 'mod', 'build', 'install']);
    expect(first.kubeProxy).toMatch(/kube-v[\d.]+-etcd-v[\d.]+\/bin\/kube-proxy$/);
    expect(first.coredns).toMatch(/coredns-v[\d.]+\/bin\/coredns$/);
  });
});
