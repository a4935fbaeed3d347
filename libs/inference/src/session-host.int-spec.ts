import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionHost, SessionNotLoadedError } from './session-host.js';

const matmul = fileURLToPath(new URL('../test-fixtures/matmul.onnx', import.meta.url));
const N = 1536; // three 1536² MatMuls ≈ 10 GFLOP: a few hundred ms on one thread

function square(n: number, v: number): Float32Array {
  return new Float32Array(n * n).fill(v);
}

/** Counts setInterval ticks and the longest gap between them while `work` runs. */
async function watchEventLoop<T>(work: () => Promise<T>): Promise<{ ms: number; ticks: number; maxGap: number; result: T }> {
  let ticks = 0;
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, 5);
  const t0 = performance.now();
  const result = await work();
  const ms = performance.now() - t0;
  clearInterval(timer);
  maxGap = Math.max(maxGap, performance.now() - last);
  return { ms, ticks, maxGap, result };
}

describe('SessionHost (mistake 10: inference off the main event loop, release frees)', () => {
  const host = new SessionHost({ poolSize: 1 });
  afterAll(() => host.close());

  it('loads a model and reports names, metadata and the provider', async () => {
    const s = await host.load(matmul, { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
    expect(s.info.inputNames).toEqual(['A', 'B']);
    expect(s.info.outputNames).toEqual(['sum', 'prod']);
    expect(s.info.inputMetadata[0]).toEqual({ name: 'A', isTensor: true, type: 'float32', shape: ['n', 'n'] });
    expect(s.info.executionProvider).toBe('cpu');
    expect(s.info.warnings).toEqual([]);
    const a = Float32Array.from([1, 2, 3, 4]);
    const b = Float32Array.from([1, 0, 0, 1]);
    const out = await s.run(
      { A: { type: 'float32', dims: [2, 2], data: a }, B: { type: 'float32', dims: [2, 2], data: b } },
      { transferInputs: false },
    );
    expect(out.sum!.dims).toEqual([2, 2]);
    expect([...out.sum!.data]).toEqual([2, 2, 3, 5]);
    expect([...out.prod!.data]).toEqual([1, 2, 3, 4]);
    expect(a.length).toBe(4); // not transferred
    const only = await s.run(
      { A: { type: 'float32', dims: [2, 2], data: a }, B: { type: 'float32', dims: [2, 2], data: b } },
      { outputNames: ['sum'] },
    );
    expect(Object.keys(only)).toEqual(['sum']);
    expect(a.length).toBe(0); // transferred by default: detached here
    await expect(s.run({ A: { type: 'float32', dims: [3, 3], data: square(2, 1) } })).rejects.toThrow(/values for dims/);
    await s.release();
  });

  it('keeps the main event loop ticking during a long run (which blocks it on the main thread)', async () => {
    // Relative, not wall-clock, assertions: the same run blocks the loop on the main thread and does not in the worker.
    const feeds = () => ({
      A: { type: 'float32' as const, dims: [N, N], data: square(N, 1e-3) },
      B: { type: 'float32' as const, dims: [N, N], data: square(N, 1e-3) },
    });
    const direct = await ort.InferenceSession.create(matmul, { intraOpNumThreads: 1 });
    let on: Awaited<ReturnType<typeof watchEventLoop>>;
    try {
      const f = feeds();
      on = await watchEventLoop(() =>
        direct.run({ A: new ort.Tensor('float32', f.A.data, f.A.dims), B: new ort.Tensor('float32', f.B.data, f.B.dims) }),
      );
    } finally {
      await direct.release();
    }
    // On the main thread the timer cannot fire until the run is over: one gap spans almost all of it.
    expect(on.maxGap).toBeGreaterThan(0.8 * on.ms - 20);

    const s = await host.load(matmul, { intraOpNumThreads: 1 });
    const off = await watchEventLoop(() => s.run(feeds()));
    expect(off.result.prod!.dims).toEqual([N, N]);
    expect(off.result.prod!.data[0]).toBeCloseTo(N ** 3 * 1e-12, 3);
    expect(off.maxGap).toBeLessThan(on.maxGap / 2);
    expect(off.ticks).toBeGreaterThan(on.ticks + 2);
    await s.release();
  });

  it('rejects runs after release() with a "not loaded" error', async () => {
    const s = await host.load(matmul);
    const feeds = {
      A: { type: 'float32' as const, dims: [1, 1], data: Float32Array.of(2) },
      B: { type: 'float32' as const, dims: [1, 1], data: Float32Array.of(3) },
    };
    expect((await s.run(feeds, { transferInputs: false })).sum!.data[0]).toBe(5);
    await s.release();
    await expect(s.run(feeds)).rejects.toThrow(SessionNotLoadedError);
    await expect(s.run(feeds)).rejects.toThrow(/not loaded/);
    expect(host.sessionIds()).not.toContain(s.id);
    await s.release(); // idempotent
  });

  it('falls back to the CPU with a warning when CUDA cannot be loaded', async () => {
    const hasCuda = ort.listSupportedBackends().some((b) => b.name === 'cuda' && b.bundled);
    const s = await host.load(matmul, { executionProviders: ['cuda', 'cpu'] });
    if (s.info.executionProvider === 'cpu') {
      expect(s.info.warnings.join(' ')).toMatch(/CUDA execution provider unavailable/);
    } else {
      expect(hasCuda || s.info.executionProvider === 'cuda').toBe(true);
    }
    const out = await s.run({
      A: { type: 'float32', dims: [1, 1], data: Float32Array.of(1) },
      B: { type: 'float32', dims: [1, 1], data: Float32Array.of(1) },
    });
    expect(out.sum!.data[0]).toBe(2);
    await s.release();
  });

  it('rejects a missing model file', async () => {
    await expect(host.load('/nonexistent/model.onnx')).rejects.toThrow();
    expect(host.sessionIds()).toEqual([]);
  });
});
