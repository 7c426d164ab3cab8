import { describe, it, expect } from '@jest/globals';
import { type Pod, copyWire } from './wire.js';

describe('Wire types', () => {
  it('types timestamps as the strings JSON carries', () => {
    const pod: Pod = JSON.parse('{"metadata":{"name":"p","creationTimestamp":"2026-01-02T03:04:05Z"}}') as Pod;
    const created: string | undefined = pod.metadata?.creationTimestamp;
    expect(typeof created).toBe('string');
    expect(Date.parse(created ?? '')).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
  });

  it('copies parsed JSON deeply: equal content, no object or array shared', () => {
    const original = JSON.parse('{"a":[1,{"b":null,"c":[true,"x"]}],"d":{"e":{"f":2.5}},"g":""}') as Record<string, unknown>;
    const copy = copyWire(original);
    expect(copy).toEqual(original);
    expect(JSON.stringify(copy)).toBe(JSON.stringify(original)); // key order kept
    const shared: string[] = [];
    const walk = (a: unknown, b: unknown, path: string) => {
      if (a === null || typeof a !== 'object') return;
      if (a === b) shared.push(path);
      for (const key of Object.keys(a)) walk((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], `${path}.${key}`);
    };
    walk(original, copy, '$');
    expect(shared).toEqual([]);
    expect(copyWire(null)).toBeNull();
    expect(copyWire('s')).toBe('s');
  });
});
