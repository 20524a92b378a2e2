import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Weights } from '../../src/codec/types.ts';
import { ConfigError, FedStreamError } from '../../src/common/errors.ts';
import { modelSchema, type ModelSpec } from '../../src/config/manifest.ts';
import { initBackend, tf } from '../../src/ml/backend.ts';
import { buildModel, countParameters, getWeights, initialWeights, setWeights, summarizeModel, weightSpecs } from '../../src/ml/model.ts';
import { LAYERS } from '../../src/ml/layers.ts';

const spec = (raw: unknown): ModelSpec => modelSchema.parse(raw);

const SMALL = spec({ inputShape: [6], seed: 7, layers: [{ type: 'dense', units: 5, activation: 'relu' }, { type: 'dense', units: 3, activation: 'softmax' }] });
const MLP = spec({
  inputShape: [784],
  layers: [{ type: 'dense', units: 200, activation: 'relu' }, { type: 'dense', units: 200, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }],
});
const CNN = spec({
  inputShape: [28, 28, 1],
  layers: [
    { type: 'conv2d', filters: 32, kernelSize: 5 },
    { type: 'maxPooling2d', poolSize: 2 },
    { type: 'conv2d', filters: 64, kernelSize: 5 },
    { type: 'maxPooling2d', poolSize: 2 },
    { type: 'flatten' },
    { type: 'dense', units: 512, activation: 'relu' },
    { type: 'dropout', rate: 0.5 },
    { type: 'dense', units: 10, activation: 'softmax' },
  ],
});

function sha256(weights: Weights): string {
  const h = createHash('sha256');
  for (const t of weights) {
    h.update(t.name);
    h.update(Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength));
  }
  return h.digest('hex');
}

const bytes = (w: Weights) => w.map((t) => Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength));

beforeAll(async () => {
  await initBackend();
});

describe('initial weights', () => {
  it('are bit-identical for the same seed, on any machine (pinned digest)', async () => {
    const a = await initialWeights(SMALL);
    const b = await initialWeights(SMALL);
    expect(bytes(a)).toEqual(bytes(b));
    // tfjs draws seeded initialisers with a JavaScript PRNG (alea): the bits do not depend on backend or CPU.
    expect(sha256(a)).toBe('eb911628a0667b322a7bd2a91a152ad08d2204e87bac1dc00c8d46bdc2771d6e');
  });

  it('differ for a different seed, and between layers of one model', async () => {
    const a = await initialWeights(SMALL);
    const b = await initialWeights({ ...SMALL, seed: 8 });
    expect(sha256(a)).not.toBe(sha256(b));
    const twin = await initialWeights(spec({ inputShape: [4], seed: 1, layers: [{ type: 'dense', units: 4 }, { type: 'dense', units: 4 }] }));
    expect(Buffer.compare(bytes([twin[0]!])[0]!, bytes([twin[2]!])[0]!)).not.toBe(0);
  });

  it('are glorot-uniform kernels and zero biases', async () => {
    const [kernel, bias] = await initialWeights(MLP);
    const limit = Math.sqrt(6 / (784 + 200));
    expect(kernel!.values.reduce((m, v) => Math.max(m, Math.abs(v)), 0)).toBeLessThanOrEqual(limit);
    expect(bias!.values.every((v) => v === 0)).toBe(true);
  });

  it('leave no tensors behind', async () => {
    await initialWeights(SMALL);
    const before = tf.memory().numTensors;
    await initialWeights(CNN);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('names and shapes', () => {
  it('are l<i>_<type>/<kernel|bias>, the same however many models the process built', () => {
    const names = () => {
      const m = buildModel(MLP);
      const n = getWeights(m).map((w) => w.name);
      m.dispose();
      return n;
    };
    const first = names();
    expect(first).toEqual(['l0_dense/kernel', 'l0_dense/bias', 'l1_dense/kernel', 'l1_dense/bias', 'l2_dense/kernel', 'l2_dense/bias']);
    expect(names()).toEqual(first);
  });

  it('match weightSpecs(), worked out without tfjs, for a CNN with a reshape input', () => {
    const m = buildModel(CNN, 10);
    try {
      expect(m.layers[0]!.name).toBe('input_reshape');
      expect(getWeights(m).map(({ name, shape }) => ({ name, shape }))).toEqual(weightSpecs(CNN));
      expect(weightSpecs(CNN).map((w) => w.name)).toEqual([
        'l0_conv2d/kernel', 'l0_conv2d/bias', 'l2_conv2d/kernel', 'l2_conv2d/bias', 'l5_dense/kernel', 'l5_dense/bias', 'l7_dense/kernel', 'l7_dense/bias',
      ]);
      expect(m.countParams()).toBe(countParameters(CNN));
    } finally {
      m.dispose();
    }
  });

  it('counts parameters (McMahan et al.: 2NN 199,210; CNN 1,663,370)', () => {
    expect(countParameters(MLP)).toBe(199_210);
    expect(countParameters(CNN)).toBe(1_663_370);
    expect(summarizeModel(CNN).layers.map((l) => l.outputShape)).toEqual([[28, 28, 32], [14, 14, 32], [14, 14, 64], [7, 7, 64], [3136], [512], [512], [10]]);
  });
});

describe('setWeights', () => {
  it('round-trips through getWeights', () => {
    const m = buildModel(SMALL);
    try {
      const w = getWeights(m).map((t) => ({ ...t, values: t.values.map((_, i) => i / 7 - 1) }));
      setWeights(m, w);
      expect(getWeights(m)).toEqual(w);
      // A set is a copy: changing the array afterwards does not reach the model.
      w[0]!.values[0] = 42;
      expect(getWeights(m)[0]!.values[0]).not.toBe(42);
    } finally {
      m.dispose();
    }
  });

  it('accepts tensors in any order, matched by name', () => {
    const m = buildModel(SMALL);
    try {
      const w = getWeights(m).map((t) => ({ ...t, values: t.values.map(() => 0.5) }));
      setWeights(m, [...w].reverse());
      expect(getWeights(m)).toEqual(w);
    } finally {
      m.dispose();
    }
  });

  it('rejects a shape mismatch, naming the tensor, and writes nothing', () => {
    const m = buildModel(SMALL);
    try {
      const before = getWeights(m);
      const w = before.map((t) => ({ ...t, values: new Float32Array(t.values.length).fill(1) }));
      w[2] = { name: 'l1_dense/kernel', shape: [3, 5], values: new Float32Array(15) };
      const err = (() => { try { setWeights(m, w); } catch (e) { return e; } })() as FedStreamError;
      expect(err).toBeInstanceOf(FedStreamError);
      expect(err.code).toBe('TRAINING_FAILED');
      expect(err.message).toBe('tensor l1_dense/kernel has shape [3, 5], the model expects [5, 3]');
      expect(getWeights(m)).toEqual(before);
    } finally {
      m.dispose();
    }
  });

  it('rejects missing, unknown, duplicated tensors and a wrong value count', () => {
    const m = buildModel(SMALL);
    try {
      const w = getWeights(m);
      expect(() => setWeights(m, w.slice(1))).toThrow('weights lack tensor l0_dense/kernel');
      expect(() => setWeights(m, [...w, { name: 'l9_dense/bias', shape: [3], values: new Float32Array(3) }])).toThrow(/tensor l9_dense\/bias, which the model does not have/);
      expect(() => setWeights(m, [...w, w[0]!])).toThrow('weights contain tensor l0_dense/kernel twice');
      expect(() => setWeights(m, w.map((t, i) => (i === 1 ? { ...t, values: new Float32Array(4) } : t)))).toThrow('tensor l0_dense/bias has 4 values, its shape [5] needs 5');
    } finally {
      m.dispose();
    }
  });
});

describe('model definitions that cannot work', () => {
  it('name the layer', () => {
    const conv = spec({ inputShape: [784], layers: [{ type: 'conv2d', filters: 4, kernelSize: 3 }, { type: 'flatten' }, { type: 'dense', units: 10 }] });
    expect(() => buildModel(conv)).toThrow(ConfigError);
    expect(() => buildModel(conv)).toThrow(/^model\.layers\[0\]: conv2d needs a \[height, width, channels\] input/);
    expect(() => buildModel(MLP, 3)).toThrow('model.layers[2]: the model ends with 10 outputs but the data has 3 classes');
    const open = spec({ inputShape: [28, 28, 1], layers: [{ type: 'conv2d', filters: 4, kernelSize: 3 }] });
    expect(() => countParameters(open)).toThrow(/output shape is \[28, 28, 4\]: add a flatten and a dense layer/);
  });
});

describe('the layer registry', () => {
  it('has one entry for every layer type the manifest accepts, and nothing else', () => {
    const layerTypes = (modelSchema.shape.layers.element.options as Array<{ shape: { type: { value: string } } }>).map((o) => o.shape.type.value);
    expect(Object.keys(LAYERS).sort()).toEqual([...layerTypes].sort());
  });
});
