import { FedStreamError, toFedStreamError } from './errors.ts';

export interface RetryOptions {
  retries?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
  /** Called before each wait; useful for logging. */
  onRetry?: (err: FedStreamError, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
}

/**
 * The one retry helper. It branches only on `retriable`, as kafkajs' retrier does:
 * a non-retriable error is rethrown at once, a retriable one is retried with
 * exponential backoff and full jitter until `retries` is spent.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { retries = 5, initialDelayMs = 100, maxDelayMs = 10_000, factor = 2, onRetry, signal } = options;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (raw) {
      const err = toFedStreamError(raw);
      if (!err.retriable || attempt >= retries || signal?.aborted) throw err;
      const ceiling = Math.min(maxDelayMs, initialDelayMs * factor ** attempt);
      const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      onRetry?.(err, attempt + 1, delayMs);
      await sleep(delayMs, signal);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/** Polls `condition` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(condition: () => T | Promise<T>, { timeoutMs = 30_000, intervalMs = 25, what = 'condition' } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new FedStreamError('TRANSPORT_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
