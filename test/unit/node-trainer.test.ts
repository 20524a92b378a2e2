import { describe, expect, it } from 'vitest';
import type { Dataset, TrainOptions, TrainResult } from '../../src/ml/index.ts';
import { tfjsLocalTrainer, trainOptionsOf } from '../../src/node/index.ts';

describe('the tfjs LocalTrainer', () => {
  it('maps every round config key onto the ml trainer, the optimizer included', async () => {
    expect(trainOptionsOf({ epochs: 3, batchSize: 0, learningRate: 0.01, optimizer: 'adam' })).toEqual({ epochs: 3, batchSize: 0, learningRate: 0.01, optimizer: 'adam' });
    const data: Dataset = { xs: new Float32Array(4), labels: new Uint8Array(2), n: 2, features: 2, numClasses: 2 };
    const seen: TrainOptions[] = [];
    const runtime = {
      train: async (o: TrainOptions): Promise<TrainResult> => {
        seen.push(o);
        return { weights: o.weights, numExamples: o.data.n, metrics: { loss: 0, accuracy: 1 }, trainingMs: 0, backend: 'test', epochs: o.epochs, steps: 1, batchSize: 2 };
      },
    };
    const spec = { inputShape: [2], seed: 1, layers: [{ type: 'dense' as const, units: 2, activation: 'linear' as const }] };
    const r = await tfjsLocalTrainer(runtime, data).train({ spec, weights: [], config: { epochs: 2, batchSize: 1, learningRate: 0.3, optimizer: 'adam' }, seed: 17 });
    expect(r.numExamples).toBe(2);
    expect(seen).toEqual([{ spec, weights: [], data, seed: 17, epochs: 2, batchSize: 1, learningRate: 0.3, optimizer: 'adam' }]);
  });
});
