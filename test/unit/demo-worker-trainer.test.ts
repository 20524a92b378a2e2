import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Weights } from '../../src/codec/types.ts';
import { FedStreamError } from '../../src/common/errors.ts';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { initBackend } from '../../src/ml/backend.ts';
import { nodeDataset } from '../../src/ml/datasets/index.ts';
import { initialWeights } from '../../src/ml/model.ts';
import { Trainer } from '../../src/ml/trainer.ts';
import { WorkerPoolTrainer } from '../../src/demo/worker-trainer.ts';

const logger = createLogger('silent');

const manifest: Manifest = parseManifest({
  apiVersion: 'fedstream/v1',
  tenant: 'test',
  name: 'pool',
  model: { inputShape: [784], seed: 3, layers: [{ type: 'dense', units: 32, activation: 'relu' }, { type: 'dropout', rate: 0.2 }, { type: 'dense', units: 10, activation: 'softmax' }] },
  data: { source: 'mnist', nodes: 4, partition: 'shards', testExamples: 200, trainExamples: 800, seed: 5 },
  training: { epochs: 2, batchSize: 10, learningRate: 0.1 },
  rounds: { count: 1, targetUpdates: 4, minUpdates: 4 },
});

function maxAbsDiff(a: Weights, b: Weights): number {
  let max = 0;
  a.forEach((t, i) => {
    expect(b[i]!.name).toBe(t.name);
    expect(b[i]!.shape).toEqual(t.shape);
    for (let j = 0; j < t.values.length; j++) max = Math.max(max, Math.abs(t.values[j]! - b[i]!.values[j]!));
  });
  return max;
}

let pool: WorkerPoolTrainer;
let w0: Weights;

beforeAll(async () => {
  await initBackend();
  w0 = await initialWeights(manifest.model);
  pool = new WorkerPoolTrainer({ manifest, logger, size: 2 });
  await pool.ready();
}, 60_000);

afterAll(async () => {
  await pool?.close();
});

describe('the worker-thread training pool', () => {
  it('trains like the in-process trainer: same seed, same data, same weights', async () => {
    const input = { spec: manifest.model, weights: w0, config: { epochs: 2, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' as const }, seed: 1234 };
    const inProcess = await new Trainer().train({ spec: input.spec, weights: input.weights, seed: input.seed, ...input.config, data: nodeDataset(manifest, 'node-2') });
    const inWorker = await pool.train('node-2', input);
    expect(inWorker.numExamples).toBe(inProcess.numExamples);
    expect(inWorker.numExamples).toBe(200);
    expect(inWorker.steps).toBe(inProcess.steps);
    expect(inWorker.backend).toBe(inProcess.backend);
    expect(maxAbsDiff(inWorker.weights, inProcess.weights)).toBe(0);
    expect(inWorker.metrics.loss).toBeCloseTo(inProcess.metrics.loss, 6);
    expect(inWorker.metrics.accuracy).toBe(inProcess.metrics.accuracy);
    // The input weights were copied to the worker, not detached.
    expect(w0[0]!.values.length).toBeGreaterThan(0);
  }, 60_000);

  it('passes the round config through to the worker: adam there is adam in process', async () => {
    const input = { spec: manifest.model, weights: w0, config: { epochs: 1, batchSize: 20, learningRate: 0.01, optimizer: 'adam' as const }, seed: 77 };
    const inProcess = await new Trainer().train({ spec: input.spec, weights: input.weights, seed: input.seed, ...input.config, data: nodeDataset(manifest, 'node-3') });
    const adam = await pool.train('node-3', input);
    expect(maxAbsDiff(adam.weights, inProcess.weights)).toBe(0);
    const sgd = await pool.train('node-3', { ...input, config: { ...input.config, optimizer: 'sgd' } });
    expect(maxAbsDiff(sgd.weights, adam.weights)).toBeGreaterThan(0);
  }, 60_000);

  it('spreads concurrent jobs over its workers and keeps each node on its own data', async () => {
    const before = pool.stats().jobs.reduce((a, b) => a + b, 0);
    const nodes = ['node-1', 'node-2', 'node-3', 'node-4', 'node-1', 'node-3'];
    const results = await Promise.all(nodes.map((nodeId, i) => pool.trainerFor(nodeId).train({ spec: manifest.model, weights: w0, config: { epochs: 1, batchSize: 20, learningRate: 0.1, optimizer: 'sgd' as const }, seed: i })));
    expect(results.map((r) => r.numExamples)).toEqual(nodes.map(() => 200));
    const stats = pool.stats();
    expect(stats.size).toBe(2);
    expect(stats.jobs.reduce((a, b) => a + b, 0) - before).toBe(nodes.length);
    expect(stats.jobs.every((n) => n > 0)).toBe(true);
    // Same node, same seed: same weights whichever worker ran it.
    const again = await pool.train('node-4', { spec: manifest.model, weights: w0, config: { epochs: 1, batchSize: 20, learningRate: 0.1, optimizer: 'sgd' as const }, seed: 3 });
    expect(maxAbsDiff(again.weights, results[3]!.weights)).toBe(0);
  }, 60_000);

  it('rejects a failed job with the trainer\'s FedStreamError and keeps working', async () => {
    const bad = pool.train('node-1', { spec: manifest.model, weights: w0, config: { epochs: 1, batchSize: 10, learningRate: -1, optimizer: 'sgd' as const }, seed: 1 });
    await expect(bad).rejects.toBeInstanceOf(FedStreamError);
    await expect(bad).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('training.learningRate') });
    const unknown = pool.train('node-9', { spec: manifest.model, weights: w0, config: { epochs: 1, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' as const }, seed: 1 });
    await expect(unknown).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('node-4') });
    const ok = await pool.train('node-1', { spec: manifest.model, weights: w0, config: { epochs: 1, batchSize: 50, learningRate: 0.1, optimizer: 'sgd' as const }, seed: 1 });
    expect(ok.numExamples).toBe(200);
  }, 60_000);

  it('rejects queued jobs when closed', async () => {
    const p = new WorkerPoolTrainer({ manifest, logger, size: 1 });
    await p.ready();
    const jobs = [1, 2, 3].map((seed) => p.train('node-1', { spec: manifest.model, weights: w0, config: { epochs: 1, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' as const }, seed }));
    const settled = Promise.allSettled(jobs);
    await p.close();
    for (const r of await settled) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'TRANSPORT_CLOSED' } });
    await expect(p.train('node-1', { spec: manifest.model, weights: w0, config: { epochs: 1, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' as const }, seed: 1 })).rejects.toMatchObject({ code: 'TRANSPORT_CLOSED' });
  }, 60_000);
});
