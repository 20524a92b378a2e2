import type { NamedTensor, Weights } from '../codec/index.ts';
import { ConfigError, FedStreamError } from '../common/index.ts';
import type { ModelSpec } from '../config/index.ts';
import { assertBackendReady, initBackend, tf } from './backend.ts';
import { product } from './datasets/dataset.ts';
import { layerDefinition } from './layers.ts';
import { deriveSeed } from './random.ts';
import { INPUT_RESHAPE, layerName, summarizeModel } from './summary.ts';

/**
 * Models from a manifest's `model` section as tfjs Sequential models, with the names summary.ts gives them (the
 * same in every process), built layer by layer through the registry in layers.ts.
 */

export { INPUT_RESHAPE, countParameters, layerName, summarizeModel, weightSpecs, type LayerSummary, type ModelSummary, type WeightSpec } from './summary.ts';

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
        // Glorot-uniform kernels seeded per layer: tfjs draws them with its own seeded PRNG in JavaScript, so the
        // values are the same on every machine and backend.
        const kernelInitializer = tf.initializers.glorotUniform({ seed: deriveSeed(spec.seed, name) });
        model.add(layerDefinition(l).build(tf, l, { name, kernelInitializer, first }));
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
