import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { clearOutputs, DEFAULT_DEMO_PIPELINE, hasPreviousRun, planDemo } from '../../src/demo/demo.ts';
import { summaryLine, summaryProblems, type DemoSummary } from '../../src/demo/summary.ts';

const env = {};
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function sample(): DemoSummary {
  return {
    finalAccuracy: 0.9012,
    finalLoss: 0.31,
    rounds: 2,
    versions: 3,
    finalVersion: 2,
    durationMs: 95_320,
    trainingMs: 80_000,
    nodes: 10,
    perRound: [
      { round: 1, version: 1, accuracy: 0.5, loss: 1.5, participants: 10, ms: 7_000 },
      { round: 2, version: 2, accuracy: 0.9012, loss: 0.31, participants: 10, ms: 6_500 },
    ],
    settings: {
      pipeline: 'pipelines/mnist-fedavg.yaml', tenant: 'demo', name: 'mnist-fedavg', nodes: 10, partition: 'shards', shardsPerNode: 2, testExamples: 1000,
      rounds: 2, epochs: 5, batchSize: 10, learningRate: 0.1, optimizer: 'sgd', fraction: 1, targetUpdates: 10, minUpdates: 5, dataSeed: 42, modelSeed: 1,
      model: { inputShape: [784], seed: 1, layers: [{ type: 'dense', units: 10, activation: 'softmax' }] },
      transport: 'memory', clickhouse: { kind: 'embedded', location: '/tmp/x/clickhouse', database: 'fedstream' }, workers: 2, backend: 'wasm', out: '/tmp/x',
    },
    workers: { size: 2, jobs: [10, 10], trainingMs: [1, 2] },
    clickhouseRows: { model_versions: 3 },
    files: { summary: 'summary.json', report: 'report.html', clickhouse: 'clickhouse' },
    startedAt: '2025-01-01T00:00:00.000Z',
    fedstreamVersion: '0.1.0',
  };
}

describe('the summary', () => {
  it('is one line: final accuracy, versions, duration', () => {
    expect(summaryLine(sample())).toBe('final accuracy=0.9012 versions=3 duration=95.3s');
    expect(summaryLine({ finalAccuracy: null, versions: 1, durationMs: 40 })).toBe('final accuracy=n/a versions=1 duration=0.0s');
    expect(summaryLine(sample())).toMatch(/^final accuracy=0\.\d{4} versions=\d+ duration=\d+\.\ds$/);
  });

  it('summary.json has the documented shape, and the checker names what is wrong', () => {
    expect(summaryProblems(JSON.parse(JSON.stringify(sample())))).toEqual([]);
    const bad = JSON.parse(JSON.stringify(sample())) as Record<string, unknown> & { perRound: Array<Record<string, unknown>>; settings: Record<string, unknown> };
    delete bad.durationMs;
    bad.perRound[1]!.accuracy = 'high';
    bad.perRound.pop();
    bad.settings.epochs = '5';
    expect(summaryProblems(bad)).toEqual([
      'durationMs: expected a number',
      'perRound: 1 entries for 2 rounds',
      'settings.epochs: expected a number',
    ]);
    expect(summaryProblems(null)).toEqual(['not an object']);
  });
});

describe('planning a demo run', () => {
  it('runs pipelines/mnist-fedavg.yaml by default: 10 non-IID nodes, embedded ClickHouse under <out>/clickhouse', () => {
    const plan = planDemo({ out: '/tmp/fedstream-demo-plan', env });
    expect(plan.pipelineFile).toBe(DEFAULT_DEMO_PIPELINE);
    expect(plan.nodeIds).toEqual(Array.from({ length: 10 }, (_, i) => `node-${i + 1}`));
    const m = plan.manifest;
    expect(m.data).toMatchObject({ source: 'mnist', nodes: 10, partition: 'shards', shardsPerNode: 2 });
    expect(m.rounds.targetUpdates).toBe(10);
    expect(m.analytics).toEqual({ path: '/tmp/fedstream-demo-plan/clickhouse', database: 'fedstream' });
    expect(m.kafka.brokers).toBeUndefined();
    expect(m.name).toBe('mnist-fedavg');
  });

  it('applies the flags: nodes (and the round quorum with them), rounds, IID, E, B, lr, seed, example counts', () => {
    const m = planDemo({ nodes: 3, rounds: 2, iid: true, epochs: 1, batchSize: 20, learningRate: 0.2, seed: 9, trainExamples: 600, testExamples: 300, env }).manifest;
    expect(m.data).toMatchObject({ nodes: 3, partition: 'iid', seed: 9, trainExamples: 600, testExamples: 300 });
    expect(m.model.seed).toBe(9);
    expect(m.training).toMatchObject({ epochs: 1, batchSize: 20, learningRate: 0.2 });
    expect(m.rounds).toMatchObject({ count: 2, targetUpdates: 3, minUpdates: 3 });
  });

  it('gives runs on real services a pipeline name of their own', () => {
    const m = planDemo({ kafka: '127.0.0.1:9092', clickhouse: 'http://127.0.0.1:8123', env }).manifest;
    expect(m.kafka.brokers).toBe('127.0.0.1:9092');
    expect(m.analytics.clickhouse).toBe('http://127.0.0.1:8123');
    expect(m.name).toMatch(/^mnist-fedavg-[a-z0-9]+$/);
  });

  it('refuses bad flags with the flag named', () => {
    expect(() => planDemo({ nodes: 0, env })).toThrow(/--nodes: expected a positive integer, got 0/);
    expect(() => planDemo({ epochs: 1.5, env })).toThrow(/--epochs/);
    expect(() => planDemo({ seed: -1, env })).toThrow(/--seed/);
    expect(() => planDemo({ learningRate: -0.1, env })).toThrow(/training\.learningRate/);
    expect(() => planDemo({ pipeline: '/nonexistent/p.yaml', env })).toThrow(/not found/);
  });
});

describe('clearing the output directory', () => {
  it('removes a previous run\'s outputs and nothing else', () => {
    const out = mkdtempSync(join(tmpdir(), 'fedstream-demo-clear-'));
    dirs.push(out);
    mkdirSync(join(out, 'clickhouse', 'store'), { recursive: true });
    writeFileSync(join(out, 'summary.json'), '{}');
    writeFileSync(join(out, 'report.html'), '<html>');
    writeFileSync(join(out, 'notes.txt'), 'mine');
    expect(hasPreviousRun(out)).toBe(true);
    clearOutputs(out);
    expect(hasPreviousRun(out)).toBe(false);
    expect(existsSync(join(out, 'notes.txt'))).toBe(true);
    clearOutputs(join(out, 'new', 'dir'));
    expect(existsSync(join(out, 'new', 'dir'))).toBe(true);
  });
});
