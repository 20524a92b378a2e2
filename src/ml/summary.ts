import { ConfigError } from '../common/index.ts';
import type { LayerSpec, ModelSpec } from '../config/index.ts';
import { product } from './datasets/dataset.ts';
import { layerDefinition, type WeightSpec } from './layers.ts';

/**
 * Names, shapes and parameter counts of a manifest's model, worked out without TensorFlow.js (through the `shape`
 * of each layer's registry entry, layers.ts), so that the aggregator can check updates without loading tfjs.
 *
 * Layer i of `model.layers` is named `l<i>_<type>` (`l0_dense`, `l1_conv2d`, …) and its weights
 * `l<i>_<type>/kernel` and `l<i>_<type>/bias`: tfjs' own names carry a process-wide counter
 * (`dense_Dense3/kernel`) and would differ between a node and the aggregator.
 */

export type { WeightSpec } from './layers.ts';

/**
 * Examples always arrive flat (`product(inputShape)` numbers). When `inputShape` has more than one dimension
 * (e.g. [28, 28, 1] for a CNN) the model starts with a weightless layer of this name that reshapes them, so data
 * loaders and the wire format never deal with image shapes.
 */
export const INPUT_RESHAPE = 'input_reshape';

export function layerName(index: number, layer: Pick<LayerSpec, 'type'>): string {
  return `l${index}_${layer.type}`;
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

/**
 * Shapes, names and parameter counts of a model. Throws a ConfigError naming the layer when the layers do not fit
 * together, and when `numClasses` is given and the model does not end in `numClasses` outputs.
 */
export function summarizeModel(spec: ModelSpec, numClasses?: number): ModelSummary {
  let shape = [...spec.inputShape];
  const layers: LayerSummary[] = spec.layers.map((l, i) => {
    const name = layerName(i, l);
    const bad = (message: string): never => {
      throw new ConfigError(`model.layers[${i}]`, `${l.type} ${message} (input shape [${shape.join(', ')}])`);
    };
    const { output, weights } = layerDefinition(l).shape(l, shape, name, bad);
    shape = output;
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
