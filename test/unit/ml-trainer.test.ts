import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { Weights } from '../../src/codec/types.ts';
import { FedStreamError } from '../../src/common/errors.ts';
import { modelSchema, type ModelSpec } from '../../src/config/manifest.ts';
import { backendInfo, conv2dFilterGradient, conv2dInputGradient, initBackend, tf } from '../../src/ml/backend.ts';
import { type Dataset, subsetDataset } from '../../src/ml/datasets/dataset.ts';
import { loadMnist } from '../../src/ml/datasets/mnist.ts';
import { buildModel, initialWeights } from '../../src/ml/model.ts';
import { forwardSteps, Trainer, type TrainOptions } from '../../src/ml/trainer.ts';

const spec = (raw: unknown): ModelSpec => modelSchema.parse(raw);

const MLP = spec({
  inputShape: [784],
  seed: 1,
  layers: [{ type: 'dense', units: 200, activation: 'relu' }, { type: 'dense', units: 200, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }],
});
const SMALL_MLP = spec({
  inputShape: [784],
  seed: 3,
  layers: [{ type: 'dense', units: 32, activation: 'relu' }, { type: 'dropout', rate: 0.3 }, { type: 'dense', units: 10, activation: 'softmax' }],
});
const SMALL_CNN = spec({
  inputShape: [28, 28, 1],
  seed: 5,
  layers: [
    { type: 'conv2d', filters: 4, kernelSize: 3 },
    { type: 'maxPooling2d', poolSize: 2 },
    { type: 'conv2d', filters: 4, kernelSize: 3, strides: 2, padding: 'valid', activation: 'linear' },
    { type: 'flatten' },
    { type: 'dropout', rate: 0.25 },
    { type: 'dense', units: 10 },
  ],
});

let train: Dataset;
let test: Dataset;
const first = (n: number) => subsetDataset(train, Array.from({ length: n }, (_, i) => i));
const bytes = (w: Weights) => Buffer.concat(w.map((t) => Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength)));

beforeAll(async () => {
  await initBackend();
  ({ train, test } = loadMnist({ seed: 42, testExamples: 1000, trainExamples: 2000 }));
});

function options(weights: Weights, data: Dataset, over: Partial<TrainOptions> = {}): TrainOptions {
  return { spec: SMALL_MLP, weights, data, epochs: 1, batchSize: 10, learningRate: 0.05, optimizer: 'sgd', seed: 11, ...over };
}

describe('backend', () => {
  it('is wasm here (tfjs-node is not installed), SIMD build, initialised once', async () => {
    expect(await initBackend()).toBe('wasm');
    expect(await initBackend('cpu')).toBe('wasm');
    expect(backendInfo()).toMatchObject({ name: 'wasm', simd: true, threads: 1 });
    expect(tf.getBackend()).toBe('wasm');
  });

  it('leaves no Emscripten process handlers behind (they rethrow and print the minified module)', () => {
    const emitter: NodeJS.EventEmitter = process;
    const handlers = ['uncaughtException', 'unhandledRejection'].flatMap((e) => emitter.listeners(e).map(String));
    expect(handlers.filter((h) => h.includes('ExitStatus') || /^function\s*\(reason\)\s*\{\s*throw reason;?\s*\}$/.test(h))).toEqual([]);
  });

  it('rejects an unknown FEDSTREAM_TFJS_BACKEND', async () => {
    vi.resetModules();
    const fresh = await import('../../src/ml/backend.ts');
    // A fresh module graph has its own error classes: match the code, not the class.
    await expect(fresh.initBackend(undefined, { env: { FEDSTREAM_TFJS_BACKEND: 'gpu' } })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(fresh.initBackend(undefined, { env: { FEDSTREAM_TFJS_BACKEND: 'gpu' } })).rejects.toThrow('FEDSTREAM_TFJS_BACKEND: expected one of tensorflow, wasm, cpu or auto, got "gpu"');
  });
});

describe('conv2d gradients on wasm', () => {
  // Direct sums over the definition of a (strided, padded) NHWC convolution.
  function reference(x: tf.Tensor4D, w: tf.Tensor4D, dy: tf.Tensor4D, stride: number, pad: 'same' | 'valid') {
    const [B, H, W, C] = x.shape;
    const [K, , , F] = w.shape;
    const [, OH, OW] = dy.shape;
    const info = tf.backend_util.computeConv2DInfo(x.shape, w.shape, stride, 1, pad);
    const { top, left } = info.padInfo;
    const xv = x.dataSync();
    const wv = w.dataSync();
    const dv = dy.dataSync();
    const dW = new Float64Array(K * K * C * F);
    const dX = new Float64Array(B * H * W * C);
    for (let b = 0; b < B; b++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) for (let kh = 0; kh < K; kh++) for (let kw = 0; kw < K; kw++) {
      const i = oh * stride - top + kh;
      const j = ow * stride - left + kw;
      if (i < 0 || i >= H || j < 0 || j >= W) continue;
      for (let c = 0; c < C; c++) for (let f = 0; f < F; f++) {
        const g = dv[((b * OH + oh) * OW + ow) * F + f]!;
        dW[((kh * K + kw) * C + c) * F + f]! += xv[((b * H + i) * W + j) * C + c]! * g;
        dX[((b * H + i) * W + j) * C + c]! += wv[((kh * K + kw) * C + c) * F + f]! * g;
      }
    }
    return { dW, dX };
  }

  const close = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    expect(a.length).toBe(b.length);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-4);
  };

  it.each([
    [1, 'same'], [1, 'valid'], [2, 'same'], [2, 'valid'], [3, 'valid'],
  ] as const)('stride %i, padding %s: filter and input gradients match the definition', (stride, pad) => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.randomUniform([2, 7, 8, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
      const w = tf.randomUniform([3, 3, 3, 4], -1, 1, 'float32', 2) as tf.Tensor4D;
      const y = tf.conv2d(x, w, stride, pad);
      const dy = tf.randomUniform(y.shape, -1, 1, 'float32', 3) as tf.Tensor4D;
      const ref = reference(x, w, dy, stride, pad);
      close(conv2dFilterGradient(x, dy, w.shape, stride, pad).dataSync(), ref.dW);
      if (stride === 1) close(conv2dInputGradient(dy, w, x.shape, pad).dataSync(), ref.dX);
      // And through tfjs' autodiff, with the registered override (wasm has no Conv2DBackpropFilter kernel).
      const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), dy)))([x, w]);
      close(gw!.dataSync(), ref.dW);
      close(gx!.dataSync(), ref.dX);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('forward pass', () => {
  it('matches the tfjs layers model (model.predict) for a CNN with dropout', () => {
    const model = buildModel(SMALL_CNN, 10);
    const steps = forwardSteps(SMALL_CNN, model);
    try {
      tf.tidy(() => {
        const x = tf.tensor2d(train.xs.subarray(0, 5 * 784), [5, 784]);
        const mine = steps.reduce((h, step) => step(h, undefined), x as tf.Tensor).dataSync();
        const theirs = (model.predict(x) as tf.Tensor).dataSync();
        for (let i = 0; i < theirs.length; i++) expect(Math.abs(mine[i]! - theirs[i]!)).toBeLessThan(1e-5);
      });
    } finally {
      model.dispose();
    }
  });
});

describe('Trainer', () => {
  it('one epoch on 2,000 digits lifts held-out accuracy far above chance', async () => {
    const trainer = new Trainer();
    const w0 = await initialWeights(MLP);
    const before = await trainer.evaluate({ spec: MLP, weights: w0, data: test });
    const result = await trainer.train({ ...options(w0, train), spec: MLP });
    const after = await trainer.evaluate({ spec: MLP, weights: result.weights, data: test });
    expect(before.accuracy).toBeLessThan(0.3);
    expect(after.accuracy).toBeGreaterThan(0.6);
    expect(after.loss).toBeLessThan(before.loss);
    expect(result).toMatchObject({ numExamples: 2000, backend: 'wasm', epochs: 1, steps: 200, batchSize: 10 });
    expect(result.metrics.accuracy).toBeGreaterThan(0.5);
    expect(result.weights.map((w) => w.name)).toEqual(w0.map((w) => w.name));
    trainer.dispose();
  });

  it('is reproducible for a seed (batch order and dropout masks), and the seed matters', async () => {
    const trainer = new Trainer();
    const w0 = await initialWeights(SMALL_MLP);
    const data = first(300);
    const a = await trainer.train(options(w0, data));
    const b = await trainer.train(options(w0, data));
    const c = await trainer.train(options(w0, data, { seed: 12 }));
    expect(bytes(a.weights).equals(bytes(b.weights))).toBe(true);
    expect(a.metrics).toEqual(b.metrics);
    expect(bytes(a.weights).equals(bytes(c.weights))).toBe(false);
    expect(bytes(a.weights).equals(bytes(w0))).toBe(false);
    trainer.dispose();
  });

  it('full batch (batchSize 0 or ≥ n) takes one step per epoch', async () => {
    const trainer = new Trainer();
    const w0 = await initialWeights(SMALL_MLP);
    const data = first(200);
    const zero = await trainer.train(options(w0, data, { batchSize: 0, epochs: 3, learningRate: 0.5 }));
    const big = await trainer.train(options(w0, data, { batchSize: 1000, epochs: 3, learningRate: 0.5 }));
    expect(zero).toMatchObject({ steps: 3, batchSize: 200, numExamples: 200 });
    expect(bytes(zero.weights).equals(bytes(big.weights))).toBe(true);
    expect(Number.isFinite(zero.metrics.loss)).toBe(true);
    trainer.dispose();
  });

  it.each(['sgd', 'adam'] as const)('%s: the tensor count does not grow across rounds', async (optimizer) => {
    const trainer = new Trainer();
    let weights = await initialWeights(SMALL_MLP);
    const data = first(100);
    const counts: number[] = [];
    for (let round = 0; round < 3; round++) {
      weights = (await trainer.train(options(weights, data, { optimizer, learningRate: optimizer === 'adam' ? 0.001 : 0.05 }))).weights;
      await trainer.evaluate({ spec: SMALL_MLP, weights, data: first(50) });
      counts.push(tf.memory().numTensors);
    }
    expect(counts[1]).toBe(counts[0]);
    expect(counts[2]).toBe(counts[0]);
    trainer.dispose();
  });

  it('trains a CNN on wasm (needs the conv2d filter gradient)', async () => {
    const trainer = new Trainer();
    const w0 = await initialWeights(SMALL_CNN);
    const data = first(100);
    const r = await trainer.train(options(w0, data, { spec: SMALL_CNN, epochs: 2 }));
    expect(r.steps).toBe(20);
    expect(Number.isFinite(r.metrics.loss)).toBe(true);
    expect(r.weights.every((w, i) => !Buffer.from(w.values.buffer).equals(Buffer.from(w0[i]!.values.buffer)))).toBe(true);
    trainer.dispose();
  });

  it('reports progress after every epoch and stops when aborted', async () => {
    const trainer = new Trainer({ yieldEveryMs: 0, progressEveryMs: 0 });
    const w0 = await initialWeights(SMALL_MLP);
    const data = first(40);
    const seen: Array<[number, number]> = [];
    await trainer.train(options(w0, data, { epochs: 2, onProgress: (p) => seen.push([p.epoch, p.batch]) }));
    expect(seen).toEqual([[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [2, 3], [2, 4]]);

    const controller = new AbortController();
    const run = trainer.train(options(w0, data, { epochs: 5, onProgress: () => controller.abort(), signal: controller.signal }));
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    const count = tf.memory().numTensors;
    await trainer.train(options(w0, data));
    expect(tf.memory().numTensors).toBe(count);
    trainer.dispose();
  });

  it('rejects data that does not fit the model', async () => {
    const trainer = new Trainer();
    const w0 = await initialWeights(SMALL_MLP);
    const narrow: Dataset = { xs: new Float32Array(20), labels: new Uint8Array(2), n: 2, features: 10, numClasses: 10 };
    const err = await trainer.train(options(w0, narrow)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FedStreamError);
    expect((err as FedStreamError).code).toBe('DATA_INVALID');
    expect((err as FedStreamError).message).toBe('the data has 10 features per example, the model expects 784 (model.inputShape [784])');
    await expect(trainer.train(options(w0, first(10), { epochs: 0 }))).rejects.toThrow('training.epochs: expected a positive integer, got 0');
    trainer.dispose();
  });
});

describe('extraLoss: a term added to the loss inside optimizer.minimize', () => {
  // A linear softmax classifier, 2 features → 2 classes, two examples, full batch: small enough to train by hand.
  const TINY = spec({ inputShape: [2], seed: 9, layers: [{ type: 'dense', units: 2, activation: 'linear' }] });
  const X = [[1, 2], [-1, 0.5]];
  const Y = [0, 1];
  const data: Dataset = { xs: Float32Array.from(X.flat()), labels: Uint8Array.from(Y), n: 2, features: 2, numClasses: 2 };
  const lr = 0.5;
  const tiny = (weights: Weights, over: Partial<TrainOptions> = {}): TrainOptions =>
    ({ spec: TINY, weights, data, epochs: 1, batchSize: 0, learningRate: lr, optimizer: 'sgd', seed: 1, ...over });

  /** Mean cross-entropy of softmax(xW + b) and its gradient, in float64. W is [in][out] row-major, as tfjs keeps it. */
  function byHand(W: number[], b: number[]): { loss: number; gW: number[]; gb: number[] } {
    const gW = [0, 0, 0, 0];
    const gb = [0, 0];
    let loss = 0;
    X.forEach((x, i) => {
      const z = [0, 1].map((j) => x[0]! * W[j]! + x[1]! * W[2 + j]! + b[j]!);
      const zmax = Math.max(...z);
      const e = z.map((v) => Math.exp(v - zmax));
      const p = e.map((v) => v / (e[0]! + e[1]!));
      loss -= Math.log(p[Y[i]!]!) / X.length;
      for (let j = 0; j < 2; j++) {
        const d = (p[j]! - (Y[i] === j ? 1 : 0)) / X.length;
        gW[j] = gW[j]! + x[0]! * d;
        gW[2 + j] = gW[2 + j]! + x[1]! * d;
        gb[j] = gb[j]! + d;
      }
    });
    return { loss, gW, gb };
  }

  const values = (w: Weights) => w.map((t) => Array.from(t.values));

  it('a zero term gives the same bits as no term', async () => {
    const w0 = await initialWeights(TINY);
    const trainer = new Trainer();
    const plain = await trainer.train(tiny(w0, { epochs: 3 }));
    const zero = await trainer.train(tiny(w0, { epochs: 3, extraLoss: () => tf.scalar(0) }));
    expect(bytes(zero.weights).equals(bytes(plain.weights))).toBe(true);
    expect(zero.metrics).toEqual(plain.metrics);
    trainer.dispose();
  });

  it('without a term, one full-batch SGD step is w − η∇CE, as worked out by hand', async () => {
    const w0 = await initialWeights(TINY);
    const [W, b] = values(w0) as [number[], number[]];
    const g = byHand(W, b);
    const r = await new Trainer().train(tiny(w0));
    expect(r.metrics.loss).toBeCloseTo(g.loss, 5);
    const [W1, b1] = values(r.weights) as [number[], number[]];
    W1.forEach((v, k) => expect(v).toBeCloseTo(W[k]! - lr * g.gW[k]!, 6));
    b1.forEach((v, k) => expect(v).toBeCloseTo(b[k]! - lr * g.gb[k]!, 6));
  });

  it('a proximal term μ/2·Σ‖w − w_base‖² pulls the second step back towards the base weights, as by hand', async () => {
    const mu = 0.8;
    const w0 = await initialWeights(TINY);
    const seen: number[][][] = [];
    const proximal = (trainable: readonly tf.Variable[], base: readonly tf.Tensor[]): tf.Scalar => {
      seen.push(base.map((t) => Array.from(t.dataSync())));
      return tf.mul(mu / 2, tf.addN(trainable.map((w, i) => tf.sum(tf.squaredDifference(w, base[i]!))))) as tf.Scalar;
    };
    const r = await new Trainer().train(tiny(w0, { epochs: 2, extraLoss: proximal }));
    // By hand: step 1 is plain SGD (the term and its gradient are zero at the base); step 2 adds μ(w1 − w0).
    const [W0, b0] = values(w0) as [number[], number[]];
    const g0 = byHand(W0, b0);
    const W1 = W0.map((v, k) => v - lr * g0.gW[k]!);
    const b1 = b0.map((v, k) => v - lr * g0.gb[k]!);
    const g1 = byHand(W1, b1);
    const W2 = W1.map((v, k) => v - lr * (g1.gW[k]! + mu * (v - W0[k]!)));
    const b2 = b1.map((v, k) => v - lr * (g1.gb[k]! + mu * (v - b0[k]!)));
    const [gotW, gotB] = values(r.weights) as [number[], number[]];
    gotW.forEach((v, k) => expect(v).toBeCloseTo(W2[k]!, 6));
    gotB.forEach((v, k) => expect(v).toBeCloseTo(b2[k]!, 6));
    // The reported loss includes the term: the last epoch's loss is CE(w1) + μ/2‖w1 − w0‖².
    const drift = W1.reduce((s, v, k) => s + (v - W0[k]!) ** 2, 0) + b1.reduce((s, v, k) => s + (v - b0[k]!) ** 2, 0);
    expect(r.metrics.loss).toBeCloseTo(g1.loss + (mu / 2) * drift, 5);
    // The base handed to the term is the starting weights at every step, not the moving ones.
    expect(seen.length).toBeGreaterThanOrEqual(2);
    for (const base of seen) expect(base).toEqual(values(w0));
    // And it differs from training without the term.
    const plain = await new Trainer().train(tiny(w0, { epochs: 2 }));
    expect(bytes(plain.weights).equals(bytes(r.weights))).toBe(false);
  });

  it('proximalMu (FedProx, the round config\'s μ) is that term: its gradient μ(w − w_t) enters each step, as by hand', async () => {
    const mu = 0.8;
    const w0 = await initialWeights(TINY);
    const epochs = 3;
    const r = await new Trainer().train(tiny(w0, { epochs, proximalMu: mu }));
    // By hand, in float64: w_{s+1} = w_s − η(∇CE(w_s) + μ(w_s − w_0)), three full-batch steps.
    let [W, b] = values(w0) as [number[], number[]];
    const [W0, b0] = [W, b];
    let lastLoss = 0;
    for (let step = 0; step < epochs; step++) {
      const g = byHand(W, b);
      const drift = W.reduce((s, v, k) => s + (v - W0[k]!) ** 2, 0) + b.reduce((s, v, k) => s + (v - b0[k]!) ** 2, 0);
      lastLoss = g.loss + (mu / 2) * drift;
      [W, b] = [W.map((v, k) => v - lr * (g.gW[k]! + mu * (v - W0[k]!))), b.map((v, k) => v - lr * (g.gb[k]! + mu * (v - b0[k]!)))];
    }
    const [gotW, gotB] = values(r.weights) as [number[], number[]];
    gotW.forEach((v, k) => expect(v).toBeCloseTo(W[k]!, 6));
    gotB.forEach((v, k) => expect(v).toBeCloseTo(b[k]!, 6));
    expect(r.metrics.loss).toBeCloseTo(lastLoss, 5);
    // μ = 0 is no term at all (the same bits); a negative μ is refused, naming the key.
    const none = await new Trainer().train(tiny(w0, { epochs }));
    const zero = await new Trainer().train(tiny(w0, { epochs, proximalMu: 0 }));
    expect(bytes(zero.weights).equals(bytes(none.weights))).toBe(true);
    expect(bytes(r.weights).equals(bytes(none.weights))).toBe(false);
    await expect(new Trainer().train(tiny(w0, { proximalMu: -1 }))).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: /training.proximalMu/ });
  });

  it('proximalMu and an extraLoss add up', async () => {
    const mu = 0.5;
    const w0 = await initialWeights(TINY);
    const hand = (trainable: readonly tf.Variable[], base: readonly tf.Tensor[]): tf.Scalar =>
      tf.mul(mu / 2, tf.addN(trainable.map((w, i) => tf.sum(tf.squaredDifference(w, base[i]!))))) as tf.Scalar;
    const both = await new Trainer().train(tiny(w0, { epochs: 3, proximalMu: mu, extraLoss: hand }));
    const double = await new Trainer().train(tiny(w0, { epochs: 3, proximalMu: 2 * mu }));
    values(both.weights).flat().forEach((v, k) => expect(v).toBeCloseTo(values(double.weights).flat()[k]!, 6));
  });
});
