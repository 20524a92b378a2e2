/**
 * Fold kernels: the float64 weighted sums behind federated averaging. `WeightedSum` folds with WebAssembly
 * SIMD where the runtime has it (Node 16.4+ does) and with the plain scalar loop elsewhere; both give the same
 * bits. docs/performance.md has the measurements.
 */
export { WeightedSum, foldScaledScalar, type WeightedSumOptions } from './weighted-sum.ts';
export { BLOCK as KERNEL_BLOCK, MAX_K as KERNEL_MAX_K, kernelModule, kernelModuleBytes } from './wasm.ts';
export { helperCount, helpersReady, startHelpers } from './threads.ts';
export { accumulateSquaredDistances, clipToNorm, coordinateMedian, krumScores, krumSelect, pairwiseSquaredDistances, scaleFromBase, trimmedMean } from './robust.ts';
