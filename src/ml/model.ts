import type { NamedTensor, Weights } from '../codec/types.ts';
import { ConfigError, FedStreamError } from '../common/errors.ts';
import type { LayerSpec, ModelSpec } from '../config/manifest.ts';
import { assertBackendReady, initBackend, tf } from './backend.ts';
import { deriveSeed, product } from './data.ts';

/**
 * Models from a manifest's `model` section, with names that are the same in every process.
 *
 * Layer i of `model.layers` is named `l<i>_<type>` (`l0_dense`, `l1_conv2d`, …) and its weights
 * `l<i>_<type>/kernel` and `l<i>_<type>/bias`: tfjs' own names carry a process-wide counter
 * (`dense_Dense3/kernel`) and would differ between a node and the aggregator.
 *
 * Examples always arrive flat (`product(inputShape)` numbers). When `inputShape` has more than one dimension
 * (e.g. [28, 28, 1] for a CNN) the model starts with a weightless `input_reshape` layer, so data loaders and
 * the wire format never deal with image shapes.
 */

export const INPUT_RESHAPE = 'input_reshape';

export function layerName(index: number, layer: Pick<LayerSpec, 'type'>): string {
  return `l${index}_${layer.type}`;
}

export interface WeightSpec {
  name: string;
  shape: number[];
}

export interface LayerSummary {
  name: string;
  type: LayerSpec['type'];
  /** Output shape without the batch dimension. */
  outputShape: number[];
  parameters: number;
  weights: WeightSpec[];
}

export interface ModelSummary {
  layers: LayerSummary[];
  outputShape: number[];
  parameters: number;
}

function outSize(size: number, kernel: number, stride: number, padding: 'same' | 'valid'): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
}

/**
 * Shapes, names and parameter counts of a model, worked out without TensorFlow.js (the aggregator validates
 * updates with it). Throws a ConfigError naming the layer when the layers do not fit together, and when
 * `numClasses` is given and the model does not end in `numClasses` outputs.
 */
export function summarizeModel(spec: ModelSpec, numClasses?: number): ModelSummary {
  let shape = [...spec.inputShape];
  const layers: LayerSummary[] = spec.layers.map((l, i) => {
    const name = layerName(i, l);
    const bad = (message: string): never => {
      throw new ConfigError(`model.layers[${i}]`, `${l.type} ${message} (input shape [${shape.join(', ')}])`);
    };
    let weights: WeightSpec[] = [];
    switch (l.type) {
      case 'dense': {
        const inDim = shape[shape.length - 1]!;
        weights = [{ name: `${name}/kernel`, shape: [inDim, l.units] }, { name: `${name}/bias`, shape: [l.units] }];
        shape = [...shape.slice(0, -1), l.units];
        break;
      }
      case 'conv2d': {
        if (shape.length !== 3) bad('needs a [height, width, channels] input: set model.inputShape to e.g. [28, 28, 1]');
        const [h, w, c] = shape as [number, number, number];
        const oh = outSize(h, l.kernelSize, l.strides, l.padding);
        const ow = outSize(w, l.kernelSize, l.strides, l.padding);
        if (oh < 1 || ow < 1) bad(`kernel ${l.kernelSize} does not fit`);
        weights = [{ name: `${name}/kernel`, shape: [l.kernelSize, l.kernelSize, c, l.filters] }, { name: `${name}/bias`, shape: [l.filters] }];
        shape = [oh, ow, l.filters];
        break;
      }
      case 'maxPooling2d': {
        if (shape.length !== 3) bad('needs a [height, width, channels] input');
        const [h, w, c] = shape as [number, number, number];
        const s = l.strides ?? l.poolSize;
        const oh = outSize(h, l.poolSize, s, 'valid');
        const ow = outSize(w, l.poolSize, s, 'valid');
        if (oh < 1 || ow < 1) bad(`pool ${l.poolSize} does not fit`);
        shape = [oh, ow, c];
        break;
      }
      case 'flatten':
        shape = [product(shape)];
        break;
      case 'dropout':
        if (l.rate >= 1) bad(`rate must be below 1, got ${l.rate}`);
        break;
    }
    const parameters = weights.reduce((a, w) => a + product(w.shape), 0);
    return { name, type: l.type, outputShape: [...shape], parameters, weights };
  });
  if (shape.length !== 1) {
    throw new ConfigError('model.layers', `the model must end with one value per class, but its output shape is [${shape.join(', ')}]: add a flatten and a dense layer`);
  }
  if (numClasses !== undefined && shape[0] !== numClasses) {
    const last = spec.layers.length - 1;
    throw new ConfigError(`model.layers[${last}]`, `the model ends with ${shape[0]} outputs but the data has ${numClasses} classes`);
  }
  return { layers, outputShape: shape, parameters: layers.reduce((a, l) => a + l.parameters, 0) };
}

/** Number of trainable parameters (weights and biases) of the model a spec describes. */
export function countParameters(spec: ModelSpec): number {
  return summarizeModel(spec).parameters;
}

/** Names and shapes of the weights, in model order: what getWeights returns and setWeights expects. */
export function weightSpecs(spec: ModelSpec): WeightSpec[] {
  return summarizeModel(spec).layers.flatMap((l) => l.weights);
}

function makeLayer(l: LayerSpec, name: string, seed: number, first: { inputShape?: number[] }) {
  // Glorot-uniform kernels seeded per layer (tfjs draws them with its own seeded PRNG in JavaScript, so the
  // values are the same on every machine and backend); zero biases.
  const kernelInitializer = tf.initializers.glorotUniform({ seed });
  switch (l.type) {
    case 'dense':
      return tf.layers.dense({ name, units: l.units, activation: l.activation, kernelInitializer, biasInitializer: 'zeros', ...first });
    case 'conv2d':
      return tf.layers.conv2d({
        name, filters: l.filters, kernelSize: l.kernelSize, strides: l.strides, padding: l.padding, activation: l.activation,
        kernelInitializer, biasInitializer: 'zeros', ...first,
      });
    case 'maxPooling2d':
      return tf.layers.maxPooling2d({ name, poolSize: l.poolSize, strides: l.strides ?? l.poolSize, ...first });
    case 'flatten':
      return tf.layers.flatten({ name, ...first });
    case 'dropout':
      return tf.layers.dropout({ name, rate: l.rate, ...first });
  }
}

/**
 * Builds the Sequential model of a spec with its deterministic initial weights (seeded by `spec.seed`).
 * `initBackend()` must have completed. The model takes flat inputs of `product(inputShape)` values.
 */
export function buildModel(spec: ModelSpec, numClasses?: number): tf.Sequential {
  summarizeModel(spec, numClasses);
  assertBackendReady();
  const model = tf.sequential({ name: 'fedstream' });
  try {
    const flat = product(spec.inputShape);
    if (spec.inputShape.length > 1) {
      model.add(tf.layers.reshape({ name: INPUT_RESHAPE, inputShape: [flat], targetShape: spec.inputShape }));
    }
    spec.layers.forEach((l, i) => {
      const name = layerName(i, l);
      const first = i === 0 && spec.inputShape.length === 1 ? { inputShape: spec.inputShape } : {};
      try {
        model.add(makeLayer(l, name, deriveSeed(spec.seed, name), first));
      } catch (err) {
        throw new ConfigError(`model.layers[${i}]`, `${l.type}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    });
    return model;
  } catch (err) {
    model.dispose();
    throw err;
  }
}

type LayerVariable = tf.LayersModel['weights'][number];

interface NamedVariable {
  name: string;
  variable: LayerVariable;
}

function variables(model: tf.LayersModel): NamedVariable[] {
  return model.layers.flatMap((layer) =>
    layer.weights.map((variable) => {
      const original = variable.originalName;
      const short = original.startsWith(`${layer.name}/`) ? original.slice(layer.name.length + 1) : original.slice(original.lastIndexOf('/') + 1);
      return { name: `${layer.name}/${short}`, variable };
    }),
  );
}

/** The model's weights as float32 copies, named `l<i>_<type>/<kernel|bias>`, in model order. */
export function getWeights(model: tf.LayersModel): Weights {
  return variables(model).map(({ name, variable }) => ({
    name,
    shape: [...variable.shape] as number[],
    // Copy: on the cpu backend dataSync() hands out the variable's own buffer.
    values: new Float32Array(variable.read().dataSync() as Float32Array),
  }));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Writes weights into the model. Every tensor is matched by name; a missing, unknown or duplicated name, a shape
 * that differs from the model's, or a value count that does not match the shape is a TRAINING_FAILED error naming
 * the tensor, and nothing is written.
 */
export function setWeights(model: tf.LayersModel, weights: Weights): void {
  const vars = variables(model);
  const byName = new Map<string, NamedTensor>();
  for (const w of weights) {
    if (byName.has(w.name)) throw new FedStreamError('TRAINING_FAILED', `weights contain tensor ${w.name} twice`, { details: { tensor: w.name } });
    byName.set(w.name, w);
  }
  const known = new Set(vars.map((v) => v.name));
  const unknown = weights.find((w) => !known.has(w.name));
  if (unknown) {
    throw new FedStreamError('TRAINING_FAILED', `weights contain tensor ${unknown.name}, which the model does not have (it has ${[...known].join(', ')})`, { details: { tensor: unknown.name } });
  }
  for (const { name, variable } of vars) {
    const w = byName.get(name);
    if (!w) throw new FedStreamError('TRAINING_FAILED', `weights lack tensor ${name}`, { details: { tensor: name } });
    const expected = variable.shape as number[];
    if (!sameShape(w.shape, expected)) {
      throw new FedStreamError('TRAINING_FAILED', `tensor ${name} has shape [${w.shape.join(', ')}], the model expects [${expected.join(', ')}]`, {
        details: { tensor: name, shape: w.shape, expected },
      });
    }
    if (w.values.length !== product(expected)) {
      throw new FedStreamError('TRAINING_FAILED', `tensor ${name} has ${w.values.length} values, its shape [${expected.join(', ')}] needs ${product(expected)}`, {
        details: { tensor: name, values: w.values.length, expected: product(expected) },
      });
    }
  }
  tf.tidy(() => {
    for (const { name, variable } of vars) {
      const w = byName.get(name)!;
      variable.write(tf.tensor(w.values, w.shape, 'float32'));
    }
  });
}

/** The initial weights (model version 0) of a spec: the same bits for the same `spec.seed` on every machine. */
export async function initialWeights(spec: ModelSpec): Promise<Weights> {
  await initBackend();
  const model = buildModel(spec);
  try {
    return getWeights(model);
  } finally {
    model.dispose();
  }
}
