/**
 * The sink's health as a value (the Service shape, plus `success`, `lag` and `error` that `fedstream sink`
 * and the tests read): running and writing, retrying a batch and since when, or stopped and why.
 */
import type { FedStreamError } from '../../common/index.ts';
import type { SinkHealth, SinkMetrics } from './types.ts';

export interface SinkCondition {
  groupId: string;
  metrics: SinkMetrics;
  lastError: FedStreamError | undefined;
  /** When the batch being retried first failed. */
  retryingSince: number | undefined;
}

export function sinkHealth(c: SinkCondition, now = Date.now()): SinkHealth {
  const m = c.metrics;
  const state = m.state;
  const figures = { rows: m.rowsTotal, batches: m.batches, deadLettered: m.deadLettered, retries: m.retries, lag: m.lag };
  const counts = `${m.rowsTotal} rows, ${m.batches} batches, ${m.deadLettered} dead-lettered, lag ${m.lag}`;
  if (state === 'running') return { healthy: true, success: true, state, lag: m.lag, figures, detail: `sink ${c.groupId} running: ${counts}` };
  const error = c.lastError ? { error: c.lastError } : {};
  if (state === 'retrying') {
    const since = c.retryingSince === undefined ? 0 : now - c.retryingSince;
    return {
      healthy: false, success: false, state, lag: m.lag, figures, ...error,
      detail: `sink ${c.groupId} paused, retrying a batch for ${Math.round(since / 1000)} s: ${c.lastError?.message ?? 'unknown error'}`,
    };
  }
  return {
    healthy: false, success: false, state, lag: m.lag, figures, ...error,
    detail: `sink ${c.groupId} ${state}${c.lastError ? `: ${c.lastError.message}` : ''} (${counts})`,
  };
}
