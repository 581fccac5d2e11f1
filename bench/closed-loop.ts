/**
 * A closed-loop load driver: N clients, each sending its next operation when the previous one
 * answered, with a warm-up that is not counted. Kept free of Herald imports so the HTTP load worker
 * thread stays light.
 */
export interface LoadResult {
  /** Operations that succeeded inside the measured window. */
  completed: number;
  failed: number;
  /** The first failure's message, to show why a run went wrong. */
  firstError: string | undefined;
  measureStart: number;
  measureEnd: number;
  /** Latencies (ms) of the measured operations. */
  latencies: number[];
}

/**
 * Runs `clients` loops that each call `operation` back to back, for `warmupMs` (not counted) then
 * `durationMs` (counted by completion time). `operation` resolves true on success.
 */
export async function runClosedLoop(
  options: { clients: number; warmupMs: number; durationMs: number },
  operation: (client: number) => Promise<boolean>,
  onMeasureStart?: (at: number) => void,
): Promise<LoadResult> {
  const started = Date.now();
  const measureStart = started + options.warmupMs;
  const measureEnd = measureStart + options.durationMs;
  const result: LoadResult = {
    completed: 0,
    failed: 0,
    firstError: undefined,
    measureStart,
    measureEnd,
    latencies: [],
  };
  const announce = setTimeout(() => onMeasureStart?.(measureStart), options.warmupMs);
  const loop = async (client: number) => {
    while (Date.now() < measureEnd) {
      const began = performance.now();
      let ok = false;
      try {
        ok = await operation(client);
      } catch (error) {
        result.firstError ??= (error as Error).message;
      }
      const ended = Date.now();
      if (ended < measureStart || ended >= measureEnd) continue;
      if (ok) {
        result.completed++;
        result.latencies.push(performance.now() - began);
      } else result.failed++;
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, i) => loop(i)));
  clearTimeout(announce);
  return result;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : 0;
}
