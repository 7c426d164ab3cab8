import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries } from './binaries.js';

describe('ensureBinaries', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('says what to install when Go is missing', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-nogo-'));
    // An empty cache forces a build; the Go command does not exist.
    await expect(ensureBinaries(() => {}, { cacheDir: dir, go: join(dir, 'bin', 'go') })).rejects.toThrow(/was not found\. Install Go 1\.24 or newer/);
  });
});
