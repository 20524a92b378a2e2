import type * as TF from '@tensorflow/tfjs';
import type { LayerSpec } from '../config/index.ts';
import { product } from './datasets/dataset.ts';
import { deriveSeed } from './random.ts';

/**
 * The layer registry: for each layer type of a manifest's `model.layers`, everything FedStream needs to know about
 * it, in one entry — its output shape and weights (worked out without TensorFlow.js: the aggregator checks updates
 * with it), the tfjs layer that holds its variables, and its forward pass as plain ops (what training runs).
 *
 * A new layer type is its option schema in config/schema.ts plus one entry in {@link LAYERS}; TypeScript refuses
 * the registry until the entry is there.
 *
 * This module only imports tfjs' types: `build` and `forward` receive the `tf` namespace from their caller
 * (model.ts, trainer.ts), so that the pure half (`shape`, and summary.ts on top of it) loads without tfjs.
 */

/** The TensorFlow.js namespace, passed in by the tfjs half of ml/. */
export type Tf = typeof TF;

export type LayerType = LayerSpec['type'];

/** The manifest spec of one layer type. */
export type LayerOf<K extends LayerType> = Extract<LayerSpec, { type: K }>;

export interface WeightSpec {
  name: string;
  shape: number[];
}

/** One layer of the forward pass; `stepSeed` is defined in training only (it seeds dropout masks). */
export type Step = (h: TF.Tensor, stepSeed: number | undefined) => TF.Tensor;

/** A tfjs layer, as `Sequential.add` takes it. */
export type TfLayer = Parameters<TF.Sequential['add']>[0];

export interface LayerDefinition<K extends LayerType> {
  /**
   * Output shape (without the batch dimension) and weights, in the order tfjs keeps them, for an input of
   * `input`. Calls `bad(reason)` (which throws a ConfigError naming the layer) when the layer does not fit.
   */
  shape(l: LayerOf<K>, input: readonly number[], name: string, bad: (reason: string) => never): { output: number[]; weights: WeightSpec[] };
  /**
   * The tfjs layer named `name`. Kernels use `kernelInitializer` (Glorot-uniform seeded for this layer, the same
   * values on every machine and backend); biases are zeros. `first` carries `inputShape` for a model's first layer.
   */
  build(tf: Tf, l: LayerOf<K>, o: { name: string; kernelInitializer: ReturnType<Tf['initializers']['glorotUniform']>; first: { inputShape?: number[] } }): TfLayer;
  /**
   * The forward pass on the layer's own variables (`weight(i)` reads its i-th weight when called), the same maths as
   * the tfjs layer (a test holds it to `model.predict`). `index` is the layer's position in `model.layers`.
   */
  forward(tf: Tf, l: LayerOf<K>, o: { index: number; weight: (i: number) => () => TF.Tensor }): Step;
}

export type LayerRegistry = { readonly [K in LayerType]: LayerDefinition<K> };

function outSize(size: number, kernel: number, stride: number, padding: 'same' | 'valid'): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
}

/** The activations a dense or conv2d layer may name (config/schema.ts), as ops. */
function activation(tf: Tf, name: string): (x: TF.Tensor) => TF.Tensor {
  switch (name) {
    case 'relu': return (x) => tf.relu(x);
    case 'softmax': return (x) => tf.softmax(x);
    case 'sigmoid': return (x) => tf.sigmoid(x);
    case 'tanh': return (x) => tf.tanh(x);
    case 'elu': return (x) => tf.elu(x);
    case 'selu': return (x) => tf.selu(x);
    default: return (x) => x; // linear
  }
}

export const LAYERS: LayerRegistry = {
  dense: {
    shape: (l, input, name) => ({
      output: [...input.slice(0, -1), l.units],
      weights: [{ name: `${name}/kernel`, shape: [input[input.length - 1]!, l.units] }, { name: `${name}/bias`, shape: [l.units] }],
    }),
    build: (tf, l, { name, kernelInitializer, first }) =>
      tf.layers.dense({ name, units: l.units, activation: l.activation, kernelInitializer, biasInitializer: 'zeros', ...first }),
    forward: (tf, l, { weight }) => {
      const [kernel, bias, act] = [weight(0), weight(1), activation(tf, l.activation)];
      return (h) => {
        const flat = h.rank === 2 ? h : tf.reshape(h, [-1, h.shape[h.rank - 1]!]);
        let y = tf.add(tf.matMul(flat, kernel()), bias());
        if (h.rank !== 2) y = tf.reshape(y, [...h.shape.slice(0, -1), l.units]);
        return act(y);
      };
    },
  },
  conv2d: {
    shape: (l, input, name, bad) => {
      if (input.length !== 3) bad('needs a [height, width, channels] input: set model.inputShape to e.g. [28, 28, 1]');
      const [h, w, c] = input as [number, number, number];
      const oh = outSize(h, l.kernelSize, l.strides, l.padding);
      const ow = outSize(w, l.kernelSize, l.strides, l.padding);
      if (oh < 1 || ow < 1) bad(`kernel ${l.kernelSize} does not fit`);
      return {
        output: [oh, ow, l.filters],
        weights: [{ name: `${name}/kernel`, shape: [l.kernelSize, l.kernelSize, c, l.filters] }, { name: `${name}/bias`, shape: [l.filters] }],
      };
    },
    build: (tf, l, { name, kernelInitializer, first }) => tf.layers.conv2d({
      name, filters: l.filters, kernelSize: l.kernelSize, strides: l.strides, padding: l.padding, activation: l.activation,
      kernelInitializer, biasInitializer: 'zeros', ...first,
    }),
    forward: (tf, l, { weight }) => {
      const [kernel, bias, act] = [weight(0), weight(1), activation(tf, l.activation)];
      return (h) => act(tf.add(tf.conv2d(h as TF.Tensor4D, kernel() as TF.Tensor4D, l.strides, l.padding), bias()));
    },
  },
  maxPooling2d: {
    shape: (l, input, _name, bad) => {
      if (input.length !== 3) bad('needs a [height, width, channels] input');
      const [h, w, c] = input as [number, number, number];
      const s = l.strides ?? l.poolSize;
      const oh = outSize(h, l.poolSize, s, 'valid');
      const ow = outSize(w, l.poolSize, s, 'valid');
      if (oh < 1 || ow < 1) bad(`pool ${l.poolSize} does not fit`);
      return { output: [oh, ow, c], weights: [] };
    },
    build: (tf, l, { name, first }) => tf.layers.maxPooling2d({ name, poolSize: l.poolSize, strides: l.strides ?? l.poolSize, ...first }),
    forward: (tf, l) => {
      const s = l.strides ?? l.poolSize;
      return (h) => tf.maxPool(h as TF.Tensor4D, l.poolSize, s, 'valid');
    },
  },
  flatten: {
    shape: (_l, input) => ({ output: [product(input)], weights: [] }),
    build: (tf, _l, { name, first }) => tf.layers.flatten({ name, ...first }),
    forward: (tf) => (h) => tf.reshape(h, [h.shape[0]!, -1]),
  },
  dropout: {
    shape: (l, input, _name, bad) => {
      if (l.rate >= 1) bad(`rate must be below 1, got ${l.rate}`);
      return { output: [...input], weights: [] };
    },
    build: (tf, l, { name, first }) => tf.layers.dropout({ name, rate: l.rate, ...first }),
    // tfjs' Dropout layer either reuses one seed (the same mask every step) or draws from Math.random: here each
    // step and layer gets a mask seeded from the step seed. No dropout outside training.
    forward: (tf, l, { index }) => (h, stepSeed) => (stepSeed === undefined || l.rate === 0 ? h : tf.dropout(h, l.rate, undefined, deriveSeed(stepSeed, 'dropout', index))),
  },
};

/** The registry entry of a layer spec, typed for it. */
export function layerDefinition<K extends LayerType>(l: LayerOf<K>): LayerDefinition<K> {
  return LAYERS[l.type as K] as LayerDefinition<K>;
}
