/**
 * Probe behind docs/performance.md (aggregation kernel): what bounds the fold at P = 4M on one thread (helper
 * threads: kernel-threads.ts). Three ways to fold the same N updates, K per pass over the accumulator:
 *
 *   cache     the SIMD loop over one staging block per update that stays in L1/L2 (the same 32 KiB re-read for
 *             every block of the accumulator): no update bytes come from memory, so this is the loop's
 *             arithmetic rate;
 *   slots     the updates decoded into the kernel's slots (what the aggregator does): each update read once from
 *             memory;
 *   arrays    the updates as Float32Arrays, copied block by block into the staging area first.
 *
 * If `slots` runs at the `cache` rate, the loop's arithmetic, not the memory system, is what bounds the fold.
 *
 *   npx tsx bench/probes/kernel-copy.ts
 */
import { WeightedSum } from '../../src/aggregator/kernels/index.ts';
import { ACC_OFFSET, BASES_OFFSET, BLOCK, STAGING_OFFSET, SLOT_BYTES, instantiateKernel, kernelModule } from '../../src/aggregator/kernels/wasm.ts';
import { updateValues } from '../aggregate.ts';
import { median } from '../lib.ts';

const P = 4_000_000;
const N = 32;
const updates = Array.from({ length: N }, (_, k) => updateValues(k, P));
const module = kernelModule();
if (!module) throw new Error('no WebAssembly SIMD on this runtime');
const rate = (ms: number[]) => ((N * P * 4) / median(ms) / 1e6).toFixed(2);

const kernel = instantiateKernel(module, P);
const bases = new Int32Array(kernel.memory.buffer, BASES_OFFSET, 8);
for (let j = 0; j < 8; j++) bases[j] = STAGING_OFFSET + j * SLOT_BYTES;

for (const k of [1, 2, 4, 8]) {
  const cache: number[] = [];
  const fromSlots: number[] = [];
  const fromArrays: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    let t0 = performance.now();
    for (let g = 0; g < N; g += k) {
      for (let start = 0; start < P; start += BLOCK) kernel.folds[k - 1]!(ACC_OFFSET + start * 8, Math.min(BLOCK, P - start), BASES_OFFSET);
    }
    cache.push(performance.now() - t0);
    // A fresh sum (and slots) each rep; filling the slots is the decoder's work, outside the clock.
    const s = new WeightedSum([P], { maxBuffered: k, maxBufferedBytes: Number.MAX_SAFE_INTEGER, slots: N, threads: 1 });
    const mine = updates.map((u) => {
      const v = s.reserve()!;
      v[0]!.set(u);
      return v;
    });
    t0 = performance.now();
    for (let j = 0; j < N; j++) s.add(mine[j]!, 1 + j);
    s.sums();
    fromSlots.push(performance.now() - t0);
    s.dispose();
    const a = new WeightedSum([P], { maxBuffered: k, maxBufferedBytes: Number.MAX_SAFE_INTEGER, slots: 0, threads: 1 });
    t0 = performance.now();
    for (let j = 0; j < N; j++) a.add([updates[j]!], 1 + j);
    a.sums();
    fromArrays.push(performance.now() - t0);
    a.dispose();
  }
  process.stdout.write(`K=${k}  cache-resident ${rate(cache)} GB/s   from slots ${rate(fromSlots)} GB/s   from arrays ${rate(fromArrays)} GB/s   (of update bytes)\n`);
}
