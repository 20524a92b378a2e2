import type { Weights } from '../codec/index.ts';
import { ConfigError, FedStreamError, toFedStreamError } from '../common/index.ts';
import type { LayerSpec, ModelSpec } from '../config/index.ts';
import { initBackend, tf } from './backend.ts';
import { type Dataset, product } from './datasets/dataset.ts';
import { deriveSeed, mulberry32, permutation } from './random.ts';
import { layerDefinition, type Step } from './layers.ts';
import { buildModel, getWeights, layerName, setWeights } from './model.ts';
import { extraLossOf, type ExtraLoss } from './proximal.ts';

export { proximalTerm, type ExtraLoss } from './proximal.ts';

/**
 * Local training and evaluation with TensorFlow.js: what the node's `LocalTrainer` port (node/trainer.ts) and the
 * aggregator's held-out evaluation run.
 *
 * Batches are drawn by a seeded shuffle (tfjs' `fit` shuffles with Math.random) and dropout masks are
 * seeded per step, so the same weights, data and seed give the same run on the same backend.
 * Loss: softmax cross-entropy (a final `softmax` layer is read as probabilities, any other final activation as
 * logits), plus an optional extra term ({@link ExtraLoss}) such as FedProx's proximal term.
 */

export interface TrainProgress {
  /** 1-based. */
  epoch: number;
  epochs: number;
  /** Batches done in this epoch. */
  batch: number;
  batches: number;
  /** Mean loss and accuracy over this epoch's batches so far. */
  loss: number;
  accuracy: number;
  elapsedMs: number;
}

export interface TrainOptions {
  spec: ModelSpec;
  /** The base version's weights; training starts from them. */
  weights: Weights;
  data: Dataset;
  epochs: number;
  /** Examples per step; 0, or at least `data.n`, means one full-batch step per epoch (FedSGD, B = ∞). */
  batchSize: number;
  learningRate: number;
  optimizer: 'sgd' | 'adam';
  /** Seeds the batch order of every epoch and the dropout masks. */
  seed: number;
  /** Called after every epoch, and within an epoch at most every `progressEveryMs`. */
  onProgress?: (progress: TrainProgress) => void;
  /** Stops training between two steps; the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** A term added to each step's loss before the gradients are taken (see {@link ExtraLoss}); default none. */
  extraLoss?: ExtraLoss;
  /**
   * FedProx's proximal coefficient μ ≥ 0 (the round config's `proximalMu`): adds {@link proximalTerm}(μ) to each
   * step's loss, beside `extraLoss` if both are given. Undefined or 0: no term (the same bits as without it). A
   * number rather than a function so that it crosses to worker threads (demo/worker-trainer.ts) as it is.
   */
  proximalMu?: number;
}

export interface TrainResult {
  weights: Weights;
  /** Examples in the local dataset: the weight FedAvg gives this update. */
  numExamples: number;
  /** Mean training loss and accuracy over the last epoch. */
  metrics: { loss: number; accuracy: number };
  trainingMs: number;
  backend: string;
  epochs: number;
  steps: number;
  /** The batch size actually used (n for full batch). */
  batchSize: number;
}

export interface EvaluateOptions {
  spec: ModelSpec;
  weights: Weights;
  data: Dataset;
  /** Examples per forward pass: bounds memory. Default 500. */
  batchSize?: number;
}

export interface EvaluateResult {
  loss: number;
  accuracy: number;
  numExamples: number;
  evalMs: number;
}

export interface TrainerOptions {
  /** Longest stretch of training without giving the event loop a turn (Kafka heartbeats run there). Default 50 ms. */
  yieldEveryMs?: number;
  /** Minimum time between two mid-epoch progress calls. Default 1000 ms. */
  progressEveryMs?: number;
}

type LossKind = 'probabilities' | 'logits';

interface CachedModel {
  model: tf.Sequential;
  lossKind: LossKind;
  steps: Step[];
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function checkInputs(spec: ModelSpec, data: Dataset): void {
  const expected = product(spec.inputShape);
  if (data.features !== expected) {
    throw new FedStreamError('DATA_INVALID', `the data has ${data.features} features per example, the model expects ${expected} (model.inputShape [${spec.inputShape.join(', ')}])`, {
      details: { features: data.features, expected },
    });
  }
  if (data.n < 1) throw new FedStreamError('DATA_INVALID', 'the dataset is empty');
  if (data.xs.length !== data.n * data.features || data.labels.length < data.n) {
    throw new FedStreamError('DATA_INVALID', `the dataset arrays do not match n=${data.n} × features=${data.features}`);
  }
}

/** Copies the rows of one batch out of the dataset. */
function gather(data: Dataset, rows: Int32Array): { xs: Float32Array; labels: Int32Array } {
  const F = data.features;
  const xs = new Float32Array(rows.length * F);
  const labels = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    xs.set(data.xs.subarray(r * F, (r + 1) * F), i * F);
    labels[i] = data.labels[r]!;
  }
  return { xs, labels };
}

function contiguous(data: Dataset, from: number, to: number): { xs: Float32Array; labels: Int32Array } {
  const F = data.features;
  return { xs: data.xs.subarray(from * F, to * F), labels: Int32Array.from(data.labels.subarray(from, to)) };
}

export class Trainer {
  private readonly models = new Map<string, CachedModel>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly yieldEveryMs: number;
  private readonly progressEveryMs: number;

  constructor(options: TrainerOptions = {}) {
    this.yieldEveryMs = options.yieldEveryMs ?? 50;
    this.progressEveryMs = options.progressEveryMs ?? 1000;
  }

  /** One model per spec for the life of the trainer: later rounds only write new weights into it. */
  private model(spec: ModelSpec, numClasses: number): CachedModel {
    // The seed only shapes version 0's weights, which are overwritten every round: one model per architecture.
    const key = JSON.stringify({ ...spec, seed: 0 });
    let cached = this.models.get(key);
    if (!cached) {
      const model = buildModel(spec, numClasses);
      const last = [...spec.layers].reverse().find((l) => l.type !== 'dropout') as LayerSpec;
      cached = {
        model,
        lossKind: last.type === 'dense' && last.activation === 'softmax' ? 'probabilities' : 'logits',
        steps: forwardSteps(spec, model),
      };
      this.models.set(key, cached);
    } else {
      // Same model, possibly other data: the class count must still fit.
      buildCheck(spec, numClasses, cached);
    }
    return cached;
  }

  /** Runs one call at a time: the cached models are shared state. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Trains from `weights` on `data`; resolves to the new weights, disposing every tensor it made. */
  train(options: TrainOptions): Promise<TrainResult> {
    return this.exclusive(() => this.trainNow(options));
  }

  /** Loss and accuracy of `weights` on a held-out set, in batches of `batchSize`. */
  evaluate(options: EvaluateOptions): Promise<EvaluateResult> {
    return this.exclusive(() => this.evaluateNow(options));
  }

  /** Disposes the cached models. */
  dispose(): void {
    for (const { model } of this.models.values()) model.dispose();
    this.models.clear();
  }

  private async trainNow(o: TrainOptions): Promise<TrainResult> {
    if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new ConfigError('training.epochs', `expected a positive integer, got ${o.epochs}`);
    if (!Number.isInteger(o.batchSize) || o.batchSize < 0) throw new ConfigError('training.batchSize', `expected 0 (full batch) or a positive integer, got ${o.batchSize}`);
    if (!(o.learningRate > 0) || !Number.isFinite(o.learningRate)) throw new ConfigError('training.learningRate', `expected a positive number, got ${o.learningRate}`);
    o.signal?.throwIfAborted();
    const backend = await initBackend();
    checkInputs(o.spec, o.data);
    const { data } = o;
    const { model, lossKind, steps: layers } = this.model(o.spec, data.numClasses);
    setWeights(model, o.weights);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    // The starting values, for terms that pull towards them. A clone keeps the old values when the optimizer
    // assigns new ones to the variables; made only when asked for, so a run without the hook is unchanged.
    const extraLoss = extraLossOf(o);
    const base = extraLoss ? variables.map((v) => tf.clone(v)) : [];
    const optimizer = o.optimizer === 'adam' ? tf.train.adam(o.learningRate) : tf.train.sgd(o.learningRate);
    const n = data.n;
    const B = o.batchSize === 0 || o.batchSize >= n ? n : o.batchSize;
    const batches = Math.ceil(n / B);
    const start = performance.now();
    let lastYield = start;
    let lastProgress = start;
    let steps = 0;
    let loss = 0;
    let accuracy = 0;
    try {
      for (let epoch = 0; epoch < o.epochs; epoch++) {
        const order = B === n ? undefined : permutation(n, mulberry32(deriveSeed(o.seed, 'epoch', epoch)));
        let lossSum = 0;
        let correct = 0;
        let seen = 0;
        for (let b = 0; b < batches; b++) {
          const batch = order ? gather(data, order.subarray(b * B, Math.min(n, (b + 1) * B))) : contiguous(data, 0, n);
          const m = batch.labels.length;
          const stepSeed = deriveSeed(o.seed, 'step', steps);
          let batchLoss = NaN;
          let batchCorrect = 0;
          tf.tidy(() => {
            const x = tf.tensor2d(batch.xs, [m, data.features]);
            const labels = tf.tensor1d(batch.labels, 'int32');
            const y = tf.oneHot(labels, data.numClasses);
            let hits: tf.Tensor | undefined;
            const cost = optimizer.minimize(() => {
              const out = forward(layers, x, stepSeed);
              // Kept: minimize() disposes everything else made in here.
              hits = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(out, -1), labels), 'int32')));
              const dataLoss = tf.mean(exampleLosses(lossKind, y, out)) as tf.Scalar;
              return extraLoss ? tf.add(dataLoss, extraLoss(variables, base)) as tf.Scalar : dataLoss;
            }, true, variables);
            batchLoss = cost!.dataSync()[0]!;
            batchCorrect = hits!.dataSync()[0]!;
            hits!.dispose();
          });
          if (!Number.isFinite(batchLoss)) {
            throw new FedStreamError('TRAINING_FAILED', `loss became ${batchLoss} at epoch ${epoch + 1}, step ${b + 1}: lower training.learningRate`, { details: { epoch: epoch + 1, step: b + 1 } });
          }
          steps++;
          lossSum += batchLoss * m;
          correct += batchCorrect;
          seen += m;
          const now = performance.now();
          if (o.onProgress && b + 1 < batches && now - lastProgress >= this.progressEveryMs) {
            lastProgress = now;
            o.onProgress({ epoch: epoch + 1, epochs: o.epochs, batch: b + 1, batches, loss: lossSum / seen, accuracy: correct / seen, elapsedMs: now - start });
          }
          if (now - lastYield >= this.yieldEveryMs) {
            await yieldToEventLoop();
            lastYield = performance.now();
            o.signal?.throwIfAborted();
          }
        }
        loss = lossSum / seen;
        accuracy = correct / seen;
        if (o.onProgress) {
          lastProgress = performance.now();
          o.onProgress({ epoch: epoch + 1, epochs: o.epochs, batch: batches, batches, loss, accuracy, elapsedMs: lastProgress - start });
        }
      }
      return {
        weights: getWeights(model),
        numExamples: n,
        metrics: { loss, accuracy },
        trainingMs: performance.now() - start,
        backend,
        epochs: o.epochs,
        steps,
        batchSize: B,
      };
    } catch (err) {
      if (err instanceof FedStreamError || o.signal?.aborted) throw err;
      throw toFedStreamError(err, 'TRAINING_FAILED', 'training failed');
    } finally {
      optimizer.dispose();
      for (const t of base) t.dispose();
    }
  }

  private async evaluateNow(o: EvaluateOptions): Promise<EvaluateResult> {
    await initBackend();
    checkInputs(o.spec, o.data);
    const { data } = o;
    const { model, lossKind, steps } = this.model(o.spec, data.numClasses);
    setWeights(model, o.weights);
    const B = Math.max(1, o.batchSize ?? 500);
    const start = performance.now();
    let lossSum = 0;
    let correct = 0;
    for (let from = 0; from < data.n; from += B) {
      const to = Math.min(data.n, from + B);
      const batch = contiguous(data, from, to);
      tf.tidy(() => {
        const x = tf.tensor2d(batch.xs, [to - from, data.features]);
        const labels = tf.tensor1d(batch.labels, 'int32');
        const out = forward(steps, x, undefined);
        lossSum += tf.sum(exampleLosses(lossKind, tf.oneHot(labels, data.numClasses), out)).dataSync()[0]!;
        correct += tf.sum(tf.cast(tf.equal(tf.argMax(out, -1), labels), 'int32')).dataSync()[0]!;
      });
      if (performance.now() - start >= this.yieldEveryMs) await yieldToEventLoop();
    }
    return { loss: lossSum / data.n, accuracy: correct / data.n, numExamples: data.n, evalMs: performance.now() - start };
  }
}

function buildCheck(spec: ModelSpec, numClasses: number, cached: CachedModel): void {
  const units = cached.model.outputs[0]!.shape[1];
  if (units !== numClasses) {
    throw new ConfigError(`model.layers[${spec.layers.length - 1}]`, `the model ends with ${units} outputs but the data has ${numClasses} classes`);
  }
}

/**
 * The forward pass as plain ops on the model's own variables, one step per layer (each layer's `forward` in the
 * registry, layers.ts); the same maths as the tfjs layers (a test holds it to `model.predict`). Training goes
 * through it rather than `model.apply` because the layers pick fused kernels whose built-in gradients need
 * Conv2DBackpropFilter, which the wasm backend lacks (see backend.ts), and because tfjs' Dropout layer either
 * reuses one seed (the same mask every step) or draws from Math.random; here each step and layer gets a mask
 * seeded from the step seed.
 */
export function forwardSteps(spec: ModelSpec, model: tf.LayersModel): Step[] {
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const steps: Step[] = [];
  if (spec.inputShape.length > 1) steps.push((h) => tf.reshape(h, [-1, ...spec.inputShape]));
  spec.layers.forEach((l, index) => {
    const name = layerName(index, l);
    const weight = (i: number) => {
      const v = byName.get(name)?.weights[i];
      if (!v) throw new FedStreamError('INTERNAL', `model has no weight ${i} in layer ${name}`);
      return () => v.read();
    };
    steps.push(layerDefinition(l).forward(tf, l, { index, weight }));
  });
  return steps;
}

function forward(steps: Step[], x: tf.Tensor, stepSeed: number | undefined): tf.Tensor {
  return steps.reduce((h, step) => step(h, stepSeed), x);
}

/** Cross-entropy per example. */
function exampleLosses(kind: LossKind, y: tf.Tensor, out: tf.Tensor): tf.Tensor {
  if (kind === 'probabilities') return tf.metrics.categoricalCrossentropy(y, out);
  return tf.losses.softmaxCrossEntropy(y, out, undefined, undefined, tf.Reduction.NONE);
}

let shared: Trainer | undefined;

/** The process-wide trainer behind {@link train} and {@link evaluate}. */
export function defaultTrainer(): Trainer {
  shared ??= new Trainer();
  return shared;
}

/** {@link Trainer.train} on the process-wide trainer. */
export function train(options: TrainOptions): Promise<TrainResult> {
  return defaultTrainer().train(options);
}

/** {@link Trainer.evaluate} on the process-wide trainer. */
export function evaluate(options: EvaluateOptions): Promise<EvaluateResult> {
  return defaultTrainer().evaluate(options);
}
