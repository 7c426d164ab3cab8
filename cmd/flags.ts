// Command-line flags: Kubernetes-style names (--leader-elect-lease-duration=15s) and durations.

/** "1500ms", "15s", "2m", "1h" or a bare number of seconds → milliseconds. */
export function parseDuration(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new Error(`--${flag}: invalid duration "${value}" (examples: 500ms, 15s, 2m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

export function parseBool(value: string | boolean, flag: string): boolean {
  if (typeof value === 'boolean') return value;
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new Error(`--${flag}: expected true or false, got "${value}"`);
}
