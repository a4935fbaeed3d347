import { describe, expect, it } from 'vitest';
import { batchProgress } from './segment-batches.service.js';

describe('batchProgress', () => {
  it('queued until a job starts or finishes, running while any is in flight', () => {
    expect(batchProgress(['queued', 'queued'])).toEqual({ status: 'queued', completed: 0, failed: 0 });
    expect(batchProgress(['running', 'queued'])).toEqual({ status: 'running', completed: 0, failed: 0 });
    expect(batchProgress(['completed', 'queued'])).toEqual({ status: 'running', completed: 1, failed: 0 });
    expect(batchProgress(['failed', 'running'])).toEqual({ status: 'running', completed: 0, failed: 1 });
  });

  it('once every job is final: completed, failed (none completed) or partial', () => {
    expect(batchProgress(['completed', 'completed'])).toEqual({ status: 'completed', completed: 2, failed: 0 });
    expect(batchProgress(['failed', 'cancelled'])).toEqual({ status: 'failed', completed: 0, failed: 2 });
    expect(batchProgress(['completed', 'failed', 'completed'])).toEqual({ status: 'partial', completed: 2, failed: 1 });
    expect(batchProgress(['cancelled', 'completed'])).toEqual({ status: 'partial', completed: 1, failed: 1 });
  });
});
