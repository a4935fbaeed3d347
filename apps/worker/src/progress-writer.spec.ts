import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { coalescedProgress } from './progress-writer.js';

describe('coalescedProgress', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('writes at most once per interval, the latest report when the interval is up, and nothing after stop', async () => {
    const written: number[] = [];
    const w = coalescedProgress(async (p) => void written.push(p), 250);
    await w.report(0.1); // within the job's first interval: held
    expect(written).toEqual([]);
    await vi.advanceTimersByTimeAsync(250);
    expect(written).toEqual([0.1]);
    await w.report(0.2);
    await w.report(0.3);
    await w.report(0.302); // pending too: the latest report is the one written when the interval is up
    expect(written).toEqual([0.1]);
    await vi.advanceTimersByTimeAsync(250);
    expect(written).toEqual([0.1, 0.302]);
    await w.report(0.304); // under 0.5 % past the last write: never written
    await vi.advanceTimersByTimeAsync(1000);
    expect(written).toEqual([0.1, 0.302]);
    await w.report(0.9); // the interval is long past: at once
    expect(written).toEqual([0.1, 0.302, 0.9]);
    expect(w.lastWriteAt()).toBe(Date.now());
    await w.report(0.95); // too soon: pending …
    await w.stop(); // … and the job ends: completing writes the final progress, so this one never is
    await vi.advanceTimersByTimeAsync(1000);
    await w.report(0.99);
    expect(written).toEqual([0.1, 0.302, 0.9]);
  });

  it('writes nothing for a job that ends within its first interval', async () => {
    const written: number[] = [];
    const w = coalescedProgress(async (p) => void written.push(p), 250);
    await w.report(0.5);
    await vi.advanceTimersByTimeAsync(100);
    await w.report(0.9);
    await w.stop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(written).toEqual([]);
    expect(w.lastWriteAt()).toBe(0);
  });

  it('clamps to 0..1 and waits for a write in flight on stop', async () => {
    let release!: () => void;
    const written: number[] = [];
    const w = coalescedProgress(
      (p) =>
        new Promise<void>((r) => {
          written.push(p);
          release = r;
        }),
      250,
    );
    void w.report(7);
    await vi.advanceTimersByTimeAsync(250);
    expect(written).toEqual([1]);
    let stopped = false;
    const stopping = w.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(stopped).toBe(true);
  });
});
