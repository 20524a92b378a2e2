/**
 * The TensorFlow.js half of ml/: backends, models, training and evaluation. Importing this file loads tfjs (tens
 * of MB, and a WebAssembly runtime), so nothing outside ml/ imports it statically: callers reach it through
 * `loadTfRuntime()` from ml/index.ts, and only when they train or evaluate.
 */
export { BACKEND_ENV, BACKEND_ORDER, backendInfo, initBackend, tf, type BackendInfo, type BackendName } from './backend.ts';
export { buildModel, getWeights, initialWeights, setWeights } from './model.ts';
export { LAYERS_WEIGHTS_FILE, fileModelHandler, layersModelFiles, type LayersModelFiles } from './export.ts';
export {
  Trainer, defaultTrainer, evaluate, forwardSteps, proximalTerm, train,
  type EvaluateOptions, type EvaluateResult, type ExtraLoss, type TrainerOptions, type TrainOptions, type TrainProgress, type TrainResult,
} from './trainer.ts';
