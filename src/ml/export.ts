/**
 * A model version as a TensorFlow.js LayersModel on disk (the format of `tf.loadLayersModel`, tfjs-layers'
 * "model.json + binary weight files": https://www.tensorflow.org/js/guide/save_load): `model.json` holds the Keras
 * topology and a weights manifest naming `weights.bin`, which holds every weight as float32 little-endian in the
 * manifest's order. The model is the one the aggregator evaluates: `buildModel(spec)` with the version's weights,
 * so it takes flat inputs of `product(inputShape)` values, like every FedStream model.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Weights } from '../codec/index.ts';
import { FedStreamError } from '../common/index.ts';
import type { ModelSpec } from '../config/index.ts';
import { tf } from './backend.ts';
import { buildModel, setWeights } from './model.ts';

/** The name of the weights file `model.json` points at. */
export const LAYERS_WEIGHTS_FILE = 'weights.bin';

export interface LayersModelFiles {
  /** `model.json`'s content (format `layers-model`). */
  modelJson: Record<string, unknown>;
  /** `weights.bin`'s content. */
  weights: Buffer;
}

/**
 * The files of a LayersModel for `spec` with `weights` (named as getWeights names them). `initBackend()` must have
 * completed. Throws TRAINING_FAILED when the weights do not fit the spec's model (setWeights names the tensor).
 */
export async function layersModelFiles(spec: ModelSpec, weights: Weights, generatedBy = 'fedstream'): Promise<LayersModelFiles> {
  const model = buildModel(spec);
  try {
    setWeights(model, weights);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    if (!artifacts?.weightData || !artifacts.weightSpecs) throw new FedStreamError('INTERNAL', 'tfjs saved the model without weights');
    const data = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
    return {
      modelJson: {
        format: 'layers-model',
        generatedBy,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [LAYERS_WEIGHTS_FILE], weights: artifacts.weightSpecs }],
      },
      weights: Buffer.from(data),
    };
  } finally {
    model.dispose();
  }
}

/**
 * A tfjs IOHandler that loads a LayersModel from the local file system (`model.json` and the weight files its
 * manifest names, relative to it): `tf.loadLayersModel(fileModelHandler('out/model.json'))`. The wasm and cpu
 * backends have no `file://` handler of their own (tfjs-node adds one).
 */
export function fileModelHandler(modelJsonPath: string): tf.io.IOHandler {
  return {
    load: async () => {
      const json = JSON.parse(readFileSync(modelJsonPath, 'utf8')) as { modelTopology: object; weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[]; format?: string; generatedBy?: string; convertedBy?: string | null };
      const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
      const buffers = json.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(join(dirname(modelJsonPath), p))));
      const all = Buffer.concat(buffers);
      return {
        modelTopology: json.modelTopology,
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
        ...(json.format ? { format: json.format } : {}),
        ...(json.generatedBy ? { generatedBy: json.generatedBy } : {}),
      };
    },
  };
}
