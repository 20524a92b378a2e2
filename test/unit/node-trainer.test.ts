import { describe, expect, it } from 'vitest';
import type { Dataset, TrainOptions, TrainResult } from '../../src/ml/index.ts';
import { decodeRoundConfig, encodeRoundConfig, tfjsLocalTrainer, trainOptionsOf } from '../../src/node/index.ts';
import { strategyFor, trainingConfig } from '../../src/aggregator/index.ts';
import { parseManifest } from '../../src/config/manifest.ts';
import { codec } from '../../src/protocol/wire.ts';

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

  it('FedProx: μ goes from the manifest through the round config on the wire to the trainer\'s options', async () => {
    const m = parseManifest({
      apiVersion: 'fedstream/v1', tenant: 't', name: 'prox',
      model: { inputShape: [2], seed: 1, layers: [{ type: 'dense', units: 2, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 3 },
      training: { epochs: 4, batchSize: 8, learningRate: 0.02, optimizer: 'sgd' },
      rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
      strategy: { name: 'fedprox', proximalMu: 0.01 },
    });
    // The aggregator: the round config FedProx plans carries μ, and so does the RoundControl record that carries it.
    const plan = strategyFor(m).configureRound({ round: 1, baseVersion: 0, knownNodes: [] });
    expect(plan.config).toEqual({ epochs: 4, batchSize: 8, learningRate: 0.02, optimizer: 'sgd', proximalMu: 0.01 });
    const record = codec().decode('RoundControl', codec().encode('RoundControl', {
      tenant: 't', pipeline: 'prox', round: 1, baseVersion: 0, kind: 'START', config: encodeRoundConfig(plan.config), selectedNodes: [], deadline: 1, minUpdates: 1, targetUpdates: 1, createdAt: 1,
    }));
    expect(record.config).toMatchObject({ proximalMu: '0.01' });
    // The node: decoded with its own manifest's training section as defaults, then mapped onto the ml trainer.
    const config = decodeRoundConfig(record.config, trainingConfig(m), 'round 1 config');
    expect(config.proximalMu).toBe(0.01);
    const data: Dataset = { xs: new Float32Array(4), labels: new Uint8Array(2), n: 2, features: 2, numClasses: 2 };
    const seen: TrainOptions[] = [];
    const runtime = {
      train: async (o: TrainOptions): Promise<TrainResult> => {
        seen.push(o);
        return { weights: o.weights, numExamples: o.data.n, metrics: { loss: 0, accuracy: 1 }, trainingMs: 0, backend: 'test', epochs: o.epochs, steps: 1, batchSize: 2 };
      },
    };
    await tfjsLocalTrainer(runtime, data).train({ spec: m.model, weights: [], config, seed: 1 });
    expect(seen[0]).toMatchObject({ epochs: 4, batchSize: 8, learningRate: 0.02, optimizer: 'sgd', proximalMu: 0.01 });
    // FedAvg sends no μ: the key is absent on the wire and in the trainer's options.
    const fedavg = strategyFor({ ...m, strategy: { name: 'fedavg' } }).configureRound({ round: 1, baseVersion: 0, knownNodes: [] });
    expect(encodeRoundConfig(fedavg.config)).not.toHaveProperty('proximalMu');
    expect(trainOptionsOf(decodeRoundConfig(encodeRoundConfig(fedavg.config), trainingConfig(m)))).not.toHaveProperty('proximalMu');
    // A bad μ on the wire is refused by the node, naming the key.
    expect(() => decodeRoundConfig({ ...record.config, proximalMu: '-1' }, trainingConfig(m), 'round 2 config')).toThrow(/round 2 config.proximalMu/);
  });
});
