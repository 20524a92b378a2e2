/**
 * Probe behind docs/performance.md (aggregation kernel): the fold kernel with and without its staging copies, at
 * P = 4M. "without" folds whatever the staging area holds (the updates already in wasm memory, as if decoded
 * there): the SIMD loop's own rate. "with" copies each block of each update in first, as WeightedSum does.
 *
 *   npx tsx bench/probes/kernel-copy.ts
 */
import { ACC_OFFSET, BLOCK, MAX_K, STAGING_OFFSET, instantiateKernel, kernelModule } from '../../src/aggregator/kernels/wasm.ts';
import { updateValues } from '../aggregate.ts';
import { median } from '../lib.ts';

const P = 4_000_000;
const N = 16;
const updates = Array.from({ length: N }, (_, k) => updateValues(k, P));
const module = kernelModule();
if (!module) throw new Error('no WebAssembly SIMD on this runtime');
const kernel = instantiateKernel(module, P);
const staging = new Float32Array(kernel.memory.buffer, STAGING_OFFSET, MAX_K * BLOCK);
for (const k of [1, 2, 4, 8]) {
  for (const copy of [false, true]) {
    const ms: number[] = [];
    for (let rep = 0; rep < 5; rep++) {
      const t0 = performance.now();
      for (let g = 0; g < N; g += k) {
        for (let start = 0; start < P; start += BLOCK) {
          const end = Math.min(P, start + BLOCK);
          if (copy) for (let j = 0; j < k; j++) staging.set(updates[g + j]!.subarray(start, end), j * BLOCK);
          kernel.folds[k - 1]!(ACC_OFFSET + start * 8, end - start);
        }
      }
      ms.push(performance.now() - t0);
    }
    process.stdout.write(`K=${k} ${copy ? 'with the staging copies   ' : 'without the staging copies'} ${((N * P * 4) / median(ms) / 1e6).toFixed(2)} GB/s of updates\n`);
  }
}
