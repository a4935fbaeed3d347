/** A job's progress reports as the runner writes them (see coalescedProgress). */
export interface ProgressWriter {
  /** The handler's report, 0..1. */
  report(fraction: number): Promise<void>;
  /** The job is over: nothing pending is written any more; resolves once a write in flight has finished. */
  stop(): Promise<void>;
  /** When the last write began (ms since the epoch; 0: none yet): it renewed the lease too. */
  lastWriteAt(): number;
}

/**
 * Coalesces a job's progress reports: at most one write per minMs and per 0.5 % step, and none in the job's first
 * minMs (claiming it wrote progress 0 and renewed the lease), so a short job writes no progress at all. A report that
 * comes too soon is written when the interval is up (the latest one then), unless the job ends first: completing
 * writes progress 1 itself, so the last report before the end is never worth a write of its own. Writes run one
 * after another.
 */
export function coalescedProgress(write: (fraction: number) => Promise<void>, minMs: number): ProgressWriter {
  const startedAt = Date.now();
  let lastWrite = 0;
  let lastValue = -1;
  let pending: number | null = null;
  let timer: NodeJS.Timeout | null = null;
  let inflight: Promise<void> = Promise.resolve();
  let stopped = false;
  const writeNow = (p: number): Promise<void> => {
    lastWrite = Date.now();
    lastValue = p;
    pending = null;
    inflight = inflight.then(() => write(p)).catch(() => undefined);
    return inflight;
  };
  return {
    report(fraction: number): Promise<void> {
      if (stopped) return Promise.resolve();
      const p = Math.min(1, Math.max(0, fraction));
      if (p - lastValue < 0.005) return Promise.resolve();
      const wait = Math.max(lastWrite, startedAt) + minMs - Date.now();
      if (wait <= 0) {
        if (timer) clearTimeout(timer);
        timer = null;
        return writeNow(p);
      }
      pending = p;
      timer ??= setTimeout(() => {
        timer = null;
        if (!stopped && pending !== null) void writeNow(pending);
      }, wait);
      return Promise.resolve();
    },
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await inflight;
    },
    lastWriteAt: () => lastWrite,
  };
}
