/**
 * The ML runtime's public face. Importing it does not load TensorFlow.js: what is exported statically is pure
 * (the seeded PRNG, the data sets, model shapes and the layer registry, types); what needs tfjs comes from
 * {@link loadTfRuntime}, so that the aggregator and `fedstream/node` can import ml/ and load tfjs only when they
 * train or evaluate. A unit test (test/unit/ml-index.test.ts) holds this to it.
 */
export * from './random.ts';
export { SecureGaussian } from './privacy/gaussian.ts';
export { RDP_ORDERS, RdpAccountant, logErfc, logGamma, rdpToEpsilon, sampledGaussianRdp, type GaussianRelease, type RdpAccountantState } from './privacy/rdp.ts';
export { localDpNoiseStd, applyLocalDp } from './privacy/local.ts';
export * from './datasets/index.ts';
export { INPUT_RESHAPE, countParameters, layerName, summarizeModel, weightSpecs, type LayerSummary, type ModelSummary, type WeightSpec } from './summary.ts';
export { LAYERS, layerDefinition, type LayerDefinition, type LayerOf, type LayerRegistry, type LayerType, type Step } from './layers.ts';
export type { BackendInfo, BackendName } from './backend.ts';
// A type-only import: erased at run time, so it does not load tfjs.
import type * as TfHalf from './tf.ts';
export type {
  EvaluateOptions, EvaluateResult, ExtraLoss, Trainer, TrainerOptions, TrainOptions, TrainProgress, TrainResult,
} from './trainer.ts';

/** The tfjs half of ml/ (ml/tf.ts): `initBackend`, `backendInfo`, `initialWeights`, `buildModel`, `train`, `evaluate`, `Trainer`, `tf`, … */
export type TfRuntime = typeof TfHalf;

/**
 * Loads TensorFlow.js and the tfjs half of ml/ (ml/tf.ts), once per process (the module cache keeps it). Does not
 * choose a backend: call `initBackend()` on the result before building models.
 */
export function loadTfRuntime(): Promise<TfRuntime> {
  return import('./tf.ts');
}
