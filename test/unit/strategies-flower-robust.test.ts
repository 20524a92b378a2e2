/**
 * Equal to Flower on identical inputs (issue 14, item 5, for robust aggregation): median, trimmed mean (several β),
 * Krum and Multi-Krum (several f, m), and norm clipping in front of a strategy, fed the same updates round after round
 * as Flower 1.42's `FedMedian`, `FedTrimmedAvg`, `Krum` (`flwr` in .cache/bench-venv, scripts/flower.mjs;
 * test/support/flower_reference.py), clipping by Flower's own `compute_clip_model_update`. Two data sets: continuous
 * values with 4 or 5 updates a round (an even count for the median every third round), and a tied one: values on a
 * coarse grid (many equal coordinates) with two nodes sending identical updates (Krum's distance ties) and 6 or 5
 * updates a round.
 *
 * Measure: per element, |FedStream − Flower| / |Flower|, the largest over every element of every round; held to 1e-6
 * with Flower computing in float64 from the same base (what matters for clipping only: these strategies keep no
 * state), and to 1e-4 free-running in float32.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { STRATEGIES, parseStrategySection, type StrategyDefinition } from '../../src/aggregator/index.ts';
import type { Weights } from '../../src/codec/index.ts';
import { mulberry32 } from '../../src/ml/index.ts';
import type { RoundConfig } from '../../src/protocol/index.ts';
import { FLWR_VERSION } from '../../scripts/flower.mjs';
import { FLOWER_REFERENCE, useReferencePython } from '../support/flower-harness.ts';

const CONFIG: RoundConfig = { epochs: 1, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' };
const SHAPES = [[24, 16], [16], [16, 5], [5]];
const ROUNDS = 6;

interface Case {
  id: string;
  section: Record<string, unknown> & { name: string };
  flower: Record<string, number>;
  clip?: number;
}

const CASES: Case[] = [
  { id: 'fedmedian', section: { name: 'fedmedian' }, flower: {} },
  { id: 'fedtrimmedavg defaults (beta 0.2)', section: { name: 'fedtrimmedavg' }, flower: {} },
  { id: 'fedtrimmedavg beta 0', section: { name: 'fedtrimmedavg', beta: 0 }, flower: { beta: 0 } },
  { id: 'fedtrimmedavg beta 0.1', section: { name: 'fedtrimmedavg', beta: 0.1 }, flower: { beta: 0.1 } },
  { id: 'fedtrimmedavg beta 0.25', section: { name: 'fedtrimmedavg', beta: 0.25 }, flower: { beta: 0.25 } },
  { id: 'fedtrimmedavg beta 0.4', section: { name: 'fedtrimmedavg', beta: 0.4 }, flower: { beta: 0.4 } },
  { id: 'fedtrimmedavg beta 0.49', section: { name: 'fedtrimmedavg', beta: 0.49 }, flower: { beta: 0.49 } },
  { id: 'krum defaults (f 0)', section: { name: 'krum' }, flower: {} },
  { id: 'krum f 1', section: { name: 'krum', numMaliciousClients: 1 }, flower: { num_malicious_clients: 1 } },
  { id: 'krum f 2', section: { name: 'krum', numMaliciousClients: 2 }, flower: { num_malicious_clients: 2 } },
  { id: 'multi-krum f 1 m 2', section: { name: 'krum', numMaliciousClients: 1, numClientsToKeep: 2 }, flower: { num_malicious_clients: 1, num_clients_to_keep: 2 } },
  { id: 'multi-krum f 1 m 3', section: { name: 'krum', numMaliciousClients: 1, numClientsToKeep: 3 }, flower: { num_malicious_clients: 1, num_clients_to_keep: 3 } },
  { id: 'multi-krum f 0 m 4', section: { name: 'krum', numClientsToKeep: 4 }, flower: { num_clients_to_keep: 4 } },
  { id: 'multi-krum f 2 m 1', section: { name: 'krum', numMaliciousClients: 2, numClientsToKeep: 1 }, flower: { num_malicious_clients: 2, num_clients_to_keep: 1 } },
  { id: 'fedavg clipNorm 0.3', section: { name: 'fedavg', clipNorm: 0.3 }, flower: {}, clip: 0.3 },
  { id: 'fedavg clipNorm 0.8', section: { name: 'fedavg', clipNorm: 0.8 }, flower: {}, clip: 0.8 },
  { id: 'fedmedian clipNorm 0.3', section: { name: 'fedmedian', clipNorm: 0.3 }, flower: {}, clip: 0.3 },
  { id: 'fedtrimmedavg beta 0.25 clipNorm 0.5', section: { name: 'fedtrimmedavg', beta: 0.25, clipNorm: 0.5 }, flower: { beta: 0.25 }, clip: 0.5 },
  { id: 'multi-krum f 1 m 2 clipNorm 0.4', section: { name: 'krum', numMaliciousClients: 1, numClientsToKeep: 2, clipNorm: 0.4 }, flower: { num_malicious_clients: 1, num_clients_to_keep: 2 }, clip: 0.4 },
];

type Data = { initial: Weights; rounds: Array<{ round: number; updates: Array<{ numExamples: number; weights: Weights }> }> };

const tensor = (shape: number[], i: number, values: Float32Array) => ({ name: `t${i}`, shape, values });

/** Continuous values near the initial weights (|w| ≥ 0.7); 5 nodes, one sitting out every third round (4: even). */
function continuous(seed: number): Data {
  const rand = mulberry32(seed);
  const initial: Weights = SHAPES.map((shape, i) => tensor(shape, i, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rand() < 0.5 ? -1 : 1) * (0.8 + 0.8 * rand()))));
  const rounds = Array.from({ length: ROUNDS }, (_, r) => {
    const drift = initial.map((t) => Float32Array.from(t.values, () => 0.04 * (rand() - 0.5)));
    const nodes = [0, 1, 2, 3, 4].filter((k) => (r + 1) % 3 !== 0 || k !== r % 5);
    return {
      round: r + 1,
      updates: nodes.map((k) => ({
        numExamples: 50 + Math.floor(rand() * 500) + k,
        weights: initial.map((t, i) => tensor(t.shape, i, Float32Array.from(t.values, (v, j) => v + (r + 1) * drift[i]![j]! + 0.03 * (rand() - 0.5)))),
      })),
    };
  });
  return { initial, rounds };
}

/**
 * Ties: every value is ±(0.5 + k/16), k in 0..7 (so most coordinates repeat across updates), and node 1 sends node
 * 0's update (a zero distance, equal Krum scores). 6 nodes (even), 5 every other round.
 */
function tied(seed: number): Data {
  const rand = mulberry32(seed);
  const grid = () => 0.5 + Math.floor(rand() * 8) / 16;
  const signs = SHAPES.map((shape) => Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rand() < 0.5 ? -1 : 1)));
  const initial: Weights = SHAPES.map((shape, i) => tensor(shape, i, Float32Array.from(signs[i]!, (s) => s * grid())));
  const rounds = Array.from({ length: ROUNDS }, (_, r) => {
    const nodes = r % 2 === 0 ? [0, 1, 2, 3, 4, 5] : [0, 1, 2, 3, 4];
    const made = new Map<number, Weights>();
    return {
      round: r + 1,
      updates: nodes.map((k) => {
        const weights = k === 1 ? made.get(0)! : SHAPES.map((shape, i) => tensor(shape, i, Float32Array.from(signs[i]!, (s) => s * grid())));
        made.set(k, weights);
        return { numExamples: 100 + 10 * k, weights };
      }),
    };
  });
  return { initial, rounds };
}

function runOurs(section: Record<string, unknown>, data: Data): Float32Array[][] {
  const options = parseStrategySection(section);
  const strategy = (STRATEGIES[options.name] as StrategyDefinition).create(options, { config: CONFIG, seed: 1 });
  let base = data.initial;
  const out: Float32Array[][] = [];
  for (const { round, updates } of data.rounds) {
    const ctx = { round, baseVersion: round - 1, knownNodes: [] };
    const agg = strategy.begin(base, ctx);
    updates.forEach((u, k) => agg.fold({ updateId: `r${round}-u${k}`, nodeId: `node-${k}`, round, numExamples: u.numExamples, weights: u.weights, metrics: {} }));
    expect(agg.count).toBe(updates.length);
    base = agg.finish([]).weights;
    out.push(base.map((t) => t.values));
  }
  return out;
}

const reference = useReferencePython('strategies-flower-robust');

type Reference = { flwr: string; results: Record<string, number[][][]> };

async function flower(data: Data, ours: Map<string, Float32Array[][]>, dtype: 'float32' | 'float64', withBase: boolean): Promise<Reference> {
  const initial = data.initial.map((t) => ({ shape: t.shape, values: Array.from(t.values) }));
  const request = {
    cases: CASES.map((c) => ({
      id: c.id, strategy: c.section.name, options: c.flower, dtype, initial, ...(c.clip ? { clipping_norm: c.clip } : {}),
      rounds: data.rounds.map((r, i) => ({
        round: r.round,
        base: withBase ? (i === 0 ? data.initial.map((t) => t.values) : ours.get(c.id)![i - 1]!).map((v) => Array.from(v)) : null,
        updates: r.updates.map((u) => ({ numExamples: u.numExamples, tensors: u.weights.map((t) => Array.from(t.values)) })),
      })),
    })),
  };
  return reference.run<Reference>(FLOWER_REFERENCE, request, 120_000);
}

function compare(ours: Float32Array[][], theirs: number[][][]): { worst: number; where: string } {
  expect(theirs).toHaveLength(ours.length);
  let worst = 0;
  let where = '';
  for (let r = 0; r < ours.length; r++) {
    for (let t = 0; t < SHAPES.length; t++) {
      const a = ours[r]![t]!;
      const b = theirs[r]![t]!;
      expect(a.length).toBe(b.length);
      for (let j = 0; j < a.length; j++) {
        expect(Math.abs(b[j]!)).toBeGreaterThan(0.1);
        const rel = Math.abs(a[j]! - b[j]!) / Math.abs(b[j]!);
        if (rel > worst) [worst, where] = [rel, `round ${r + 1} tensor ${t} [${j}]: ours ${a[j]} Flower ${b[j]}`];
      }
    }
  }
  return { worst, where };
}

for (const [label, data] of [['continuous, 4–5 updates', continuous(20_261_130)], ['ties and duplicates, 5–6 updates', tied(7)]] as const) {
  describe(`robust strategies equal Flower ${FLWR_VERSION}'s (${label})`, () => {
    const ours = new Map(CASES.map((c) => [c.id, runOurs(c.section, data)]));
    let sameBase: Reference | undefined;
    let freeRunning: Reference | undefined;
    const table = new Map<string, [number, number]>();

    beforeAll(async () => {
      if (!reference.python) return;
      sameBase = await flower(data, ours, 'float64', true);
      freeRunning = await flower(data, ours, 'float32', false);
    }, 180_000);

    it.for(CASES)('$id: same inputs every round → within 1e-6 relative of Flower', (c, ctx) => {
      if (reference.unavailable) return ctx.skip(`flwr unavailable outside CI: ${reference.unavailable}`);
      expect(sameBase!.flwr).toBe(FLWR_VERSION);
      const { worst, where } = compare(ours.get(c.id)!, sameBase!.results[c.id]!);
      table.set(c.id, [worst, table.get(c.id)?.[1] ?? NaN]);
      expect(worst, where).toBeLessThan(1e-6);
    });

    it.for(CASES)('$id: free-running, Flower in float32 → within 1e-4', (c, ctx) => {
      if (reference.unavailable) return ctx.skip(`flwr unavailable outside CI: ${reference.unavailable}`);
      const { worst, where } = compare(ours.get(c.id)!, freeRunning!.results[c.id]!);
      table.set(c.id, [table.get(c.id)?.[0] ?? NaN, worst]);
      expect(worst, where).toBeLessThan(1e-4);
    });

    it('reports the largest relative difference per case', (ctx) => {
      if (reference.unavailable) return ctx.skip(`flwr unavailable outside CI: ${reference.unavailable}`);
      expect([...table.keys()].sort()).toEqual(CASES.map((c) => c.id).sort());
      process.stderr.write(`[strategies-flower-robust] ${label}: max |ours − Flower| / |Flower| over ${ROUNDS} rounds (same base, float64 | free-running, float32):\n${
        CASES.map((c) => `  ${c.id.padEnd(40)} ${table.get(c.id)![0].toExponential(2)}  ${table.get(c.id)![1].toExponential(2)}`).join('\n')}\n`);
    });
  });
}
