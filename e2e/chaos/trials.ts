// The chaos suite runs twice over: in a short form inside `make test` (every CI run) and in full with
// `make test-chaos` (SWITCHBOARD_CHAOS=full), which repeats each fault many more times.

export const CHAOS_FULL = process.env.SWITCHBOARD_CHAOS === 'full';

/** How many times to repeat a fault: `short` in `make test`, `full` in `make test-chaos`. */
export const trials = (short: number, full: number): number => (CHAOS_FULL ? full : short);

/** min/median/max of durations in ms, as the closing figures print them. */
export function spread(ms: readonly number[]): string {
  if (ms.length === 0) return 'no samples';
  const sorted = [...ms].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return `min ${sorted[0]} ms, median ${median} ms, max ${sorted[sorted.length - 1]} ms (n=${sorted.length})`;
}

/** The seed of a chaos test's random choices: fixed, so a failure replays; SWITCHBOARD_CHAOS_SEED tries another. */
export const CHAOS_SEED = Number(process.env.SWITCHBOARD_CHAOS_SEED ?? 20261130);
