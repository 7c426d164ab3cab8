import { describe, it, expect } from '@jest/globals';
import type { Pod } from './wire.js';

describe('Wire types', () => {
  it('types timestamps as the strings JSON carries', () => {
    const pod: Pod = JSON.parse('{"metadata":{"name":"p","creationTimestamp":"2026-01-02T03:04:05Z"}}') as Pod;
    const created: string | undefined = pod.metadata?.creationTimestamp;
    expect(typeof created).toBe('string');
    expect(Date.parse(created ?? '')).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
  });
});
