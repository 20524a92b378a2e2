import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { registerDemoCommands } from '../../src/cli/commands/demo.ts';
import { experimentManifest, experimentMarkdown, experimentTable, gridTable, PAPER_ROUNDS, roundsTo, type ExperimentResult, type LearningRateGrid, type SettingResult } from '../../src/demo/experiment.ts';

const dir = mkdtempSync(join(tmpdir(), 'fedstream-experiment-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function setting(algorithm: 'fedsgd' | 'fedavg', partition: 'iid' | 'non-iid', roundsToTarget: number | null, roundsRun: number): SettingResult {
  const accuracy = Array.from({ length: roundsRun }, (_, i) => 0.5 + (0.45 * (i + 1)) / roundsRun);
  return {
    algorithm, partition, epochs: algorithm === 'fedsgd' ? 1 : 5, batchSize: algorithm === 'fedsgd' ? 0 : 10, learningRate: 0.1,
    roundsToTarget, roundsRun, maxRounds: 1000, bestAccuracy: accuracy.at(-1)!, finalAccuracy: accuracy.at(-1)!, accuracy, loss: accuracy.map((a) => 1 - a),
    stepsPerRound: algorithm === 'fedsgd' ? 1 : 45, ms: 1000,
  };
}

function result(settings: SettingResult[], speedup: ExperimentResult['speedup']): ExperimentResult {
  return {
    experiment: 'fedavg-vs-fedsgd', createdAt: '2025-01-01T00:00:00.000Z', quick: false, target: 0.93, maxRounds: 1000, nodes: 100, fraction: 0.1, clientsPerRound: 10,
    trainExamples: 9000, testExamples: 1000, examplesPerClient: 90, seed: 1, model: { name: '2NN', parameters: 199210 }, backend: 'wasm', workers: 2, cores: 2, loadAverage: 1,
    method: 'in-process', settings, speedup, paper: PAPER_ROUNDS, durationMs: 600_000,
  };
}

describe('the FedAvg versus FedSGD table', () => {
  it('puts our rounds beside the paper\'s, with the speed-up, and says "> N" where the cap was hit', () => {
    const r = result([setting('fedsgd', 'iid', 300, 300), setting('fedavg', 'iid', 12, 12), setting('fedsgd', 'non-iid', null, 1000), setting('fedavg', 'non-iid', 80, 80)], { iid: 25, 'non-iid': null });
    const table = experimentTable(r).split('\n');
    expect(table[0]).toMatch(/^\| partition \| FedSGD \(E=1, B=∞\) \| FedAvg \(E=5, B=10\) \| speed-up \|/);
    expect(table[2]).toBe('| IID | 300 | 12 | 25.0× | 1474 / 87 (16.9×) | 626 / 20 (31.3×) |');
    expect(table[3]).toBe('| non-IID (2 label shards per client) | > 1000 | 80 | > 12.5× | 1796 / 664 (2.7×) | 483 / 229 (2.1×) |');
    const md = experimentMarkdown(r, 'npx fedstream experiment fedavg-vs-fedsgd');
    expect(md).toContain('## Result: rounds to reach 93% accuracy on 1000 held-out digits');
    expect(md).toContain('## Why our numbers differ from the paper\'s');
    expect(md).toContain('u = 45 local steps');
    expect(md).not.toContain('Quick smoke run');
  });

  it('reads rounds to a target off the learning-rate grid\'s curves, the η used in bold', () => {
    expect(roundsTo([0.5, 0.91, 0.89, 0.95], 0.9)).toBe(2);
    expect(roundsTo([0.5, 0.6], 0.9)).toBeNull();
    const grid: LearningRateGrid = {
      experiment: 'fedavg-vs-fedsgd-lr-grid', createdAt: '2025-01-01T00:00:00.000Z', gridTarget: 0.95, nodes: 100, fraction: 0.1, seed: 1,
      entries: [
        { algorithm: 'fedavg', partition: 'iid', learningRate: 0.05, maxRounds: 300, accuracy: [0.8, 0.9, 0.93, 0.95], ms: 1 },
        { algorithm: 'fedavg', partition: 'iid', learningRate: 0.1, maxRounds: 300, accuracy: [0.85, 0.93, 0.95], ms: 1 },
        { algorithm: 'fedsgd', partition: 'non-iid', learningRate: 0.5, maxRounds: 3, accuracy: [0.5, 0.6, 0.7], ms: 1 },
      ],
    };
    const r = result([{ ...setting('fedavg', 'iid', 2, 2), learningRate: 0.1 }], { iid: null, 'non-iid': null });
    expect(gridTable(grid, 0.93, r).split('\n')).toEqual([
      '| setting | η: rounds to target |',
      '|---|---|',
      '| FedAvg iid | η=0.05: 3, η=0.1: **2** |',
      '| FedSGD non-iid | η=0.5: > 3 |',
    ]);
    expect(experimentMarkdown(r, 'x', grid)).toContain('### Learning-rate grid');
  });

  it('uses the paper\'s client setup: the 2NN, K clients, two label shards each, C·K selected per round', () => {
    const m = experimentManifest({ nodes: 100, fraction: 0.1, partition: 'non-iid', seed: 1, testExamples: 1000 });
    expect(m.model.layers.map((l) => (l.type === 'dense' ? l.units : 0))).toEqual([200, 200, 10]);
    expect(m.data).toMatchObject({ source: 'mnist', nodes: 100, partition: 'shards', shardsPerNode: 2, testExamples: 1000 });
    expect({ ...m.strategy, ...m.rounds }).toMatchObject({ fraction: 0.1, targetUpdates: 10 });
    expect(experimentManifest({ nodes: 100, fraction: 0.1, partition: 'iid', seed: 1, testExamples: 1000 }).data).toMatchObject({ partition: 'iid' });
  });

  it('--quick runs every setting for a few rounds through the command and writes the table', async () => {
    const program = new Command().exitOverride();
    registerDemoCommands(program);
    const json = join(dir, 'quick.json');
    const markdown = join(dir, 'quick.md');
    const before = process.exitCode;
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let printed = '';
    try {
      await program.parseAsync(['node', 'fedstream', 'experiment', 'fedavg-vs-fedsgd', '--quick', '--json', json, '--markdown', markdown]);
      printed = stdout.mock.calls.map((c) => String(c[0])).join('');
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
    const code = process.exitCode;
    process.exitCode = before;
    // The table goes to stdout too.
    expect(printed).toMatch(/^\| partition \|/);
    expect(code).toBe(0);
    expect(existsSync(json) && existsSync(markdown)).toBe(true);
    const r = JSON.parse(readFileSync(json, 'utf8')) as ExperimentResult;
    expect(r.quick).toBe(true);
    expect(r.settings.map((s) => `${s.algorithm}-${s.partition}`)).toEqual(['fedsgd-iid', 'fedavg-iid', 'fedsgd-non-iid', 'fedavg-non-iid']);
    for (const s of r.settings) {
      expect(s.roundsRun).toBe(2);
      expect(s.accuracy).toHaveLength(2);
      expect(s.bestAccuracy).toBeGreaterThan(0.1);
    }
    expect(r.settings.find((s) => s.algorithm === 'fedsgd')!.stepsPerRound).toBe(1);
    expect(r.settings.find((s) => s.algorithm === 'fedavg')!.stepsPerRound).toBe(50);
    const text = readFileSync(markdown, 'utf8');
    expect(text).toContain('Quick smoke run');
    expect(text).toMatch(/\| IID \| (> 2|\d+) \| (> 2|\d+) \|/);
    expect(text).toMatch(/\| non-IID \(2 label shards per client\) \|/);
  }, 180_000);
});
