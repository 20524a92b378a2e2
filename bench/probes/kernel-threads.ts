/**
 * Probe behind docs/performance.md (aggregation kernel): the fold of updates in slots, P = 4M, K = 8, on the
 * calling thread alone and with helper threads (src/aggregator/kernels/threads.ts). Each update is written into
 * its slot first (the decoder's copy, untimed), as in the benchmark; GB/s of update bytes, median of 5.
 *
 *   npx tsx bench/probes/kernel-threads.ts
 */
import { WeightedSum, helpersReady, startHelpers } from '../../src/aggregator/kernels/index.ts';
import { updateValues } from '../aggregate.ts';
import { median } from '../lib.ts';

const P = 4_000_000;
const N = 48;
const updates = Array.from({ length: N }, (_, k) => updateValues(k, P));
const helpers = startHelpers();
while (helpersReady() < helpers) await new Promise((r) => setTimeout(r, 10));
for (const threads of [1, 1 + helpers, 1, 1 + helpers]) {
  const ms: number[] = [];
  let used = 0;
  for (let rep = 0; rep < 5; rep++) {
    const sum = new WeightedSum([P], { threads });
    let t = 0;
    for (let j = 0; j < N; j++) {
      const slot = sum.reserve()!;
      slot[0]!.set(updates[j]!);
      const t0 = performance.now();
      sum.add(slot, 1 + j);
      t += performance.now() - t0;
    }
    const t0 = performance.now();
    sum.sums();
    ms.push(t + performance.now() - t0);
    used = sum.lastFoldThreads;
    // As WeightedMean.finish does: the memory goes to the next rep (the next round's aggregation).
    sum.dispose();
  }
  process.stdout.write(`threads ${threads} (used ${used}): ${((N * P * 4) / median(ms) / 1e6).toFixed(2)} GB/s of updates\n`);
}
