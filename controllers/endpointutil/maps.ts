// String maps (labels, annotations) compared the way apimachinery's semantic equality does: absent equals empty.

export type StringMap = Record<string, string>;

export function stringMapsEqual(a: StringMap | undefined | null, b: StringMap | undefined | null): boolean {
  const left = Object.entries(a ?? {});
  return left.length === Object.keys(b ?? {}).length && left.every(([key, value]) => Object.hasOwn(b ?? {}, key) && b?.[key] === value);
}

export function withoutKeys(map: StringMap | undefined | null, keys: readonly string[]): StringMap {
  const copy: StringMap = { ...(map ?? {}) };
  for (const key of keys) delete copy[key];
  return copy;
}
