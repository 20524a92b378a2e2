/**
 * Probe behind docs/performance.md (aggregation kernel): the fold of updates in slots, P = 4M, at each number K
 * of updates per pass, on the calling thread alone and with helper threads (src/aggregator/kernels/threads.ts).
 * Each update is written into its slot first (the decoder's copy, untimed), as in the benchmark; the sum is
 * disposed after each rep so that the next rep reuses its memory, as the next round's does. One untimed
 * warm-up rep per case (it maps and first-touches the memory); GB/s of update bytes, median of 3.
 *
 *   npx tsx bench/probes/kernel-threads.ts
 */
import { WeightedSum, helpersReady, startHelpers } from '../../src/aggregator/kernels/index.ts';
import { updateValues } from '../aggregate.ts';
import { median } from '../lib.ts';

const P = 4_000_000;
const N = 32;
const updates = Array.from({ length: N }, (_, k) => updateValues(k, P));
const helpers = startHelpers();
while (helpersReady() < helpers) await new Promise((r) => setTimeout(r, 10));

function rep(k: number, threads: number): number {
  const sum = new WeightedSum([P], { threads, maxBuffered: k });
  let ms = 0;
  for (let j = 0; j < N; j++) {
    const slot = sum.reserve()!;
    slot[0]!.set(updates[j]!);
    const t0 = performance.now();
    sum.add(slot, 1 + j);
    ms += performance.now() - t0;
  }
  const t0 = performance.now();
  sum.sums();
  ms += performance.now() - t0;
  sum.dispose();
  return ms;
}

for (const k of [1, 2, 4, 8]) {
  const line: string[] = [];
  for (const threads of [1, 1 + helpers]) {
    rep(k, threads);
    const ms = [rep(k, threads), rep(k, threads), rep(k, threads)];
    line.push(`${threads} thread(s) ${((N * P * 4) / median(ms) / 1e6).toFixed(2)}`);
  }
  process.stdout.write(`K=${k}: ${line.join('   ')} GB/s of updates\n`);
}
