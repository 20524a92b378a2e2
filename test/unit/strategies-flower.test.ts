/**
 * Equal to Flower on identical inputs (issue 14, item 5, for FedAvg, FedProx and the server optimizers): the same
 * initial weights and the same updates, round after round, go to FedStream's strategy (built from a manifest's
 * strategy section, through the registry) and to Flower 1.42's (`flwr` from PyPI in .cache/bench-venv, installed by
 * scripts/flower.mjs on first use; test/support/flower_reference.py calls `aggregate_fit` as Flower's server does).
 * Several rounds, so that the optimizers' state (momentum, m_t, v_t) and FedAdam's bias correction matter.
 *
 * Measure: per element, |FedStream − Flower| / |Flower|, the largest over every element of every round; held to
 * 1e-6. The inputs keep every weight away from zero (|w| ≥ 0.3 throughout), so the relative measure is meaningful.
 *
 * Without flwr: a failure under CI=true (and wherever it could be installed); skipped with the reason only on a
 * machine outside CI where neither it nor python3-venv can be had.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { STRATEGIES, parseStrategySection, type StrategyDefinition, type Strategy } from '../../src/aggregator/index.ts';
import type { Weights } from '../../src/codec/index.ts';
import { mulberry32 } from '../../src/ml/index.ts';
import type { RoundConfig } from '../../src/protocol/index.ts';
import { FLWR_VERSION } from '../../scripts/flower.mjs';
import { FLOWER_REFERENCE, useReferencePython } from '../support/flower-harness.ts';

const TOLERANCE = 1e-6;

const CONFIG: RoundConfig = { epochs: 1, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' };

interface Case {
  id: string;
  /** The manifest's strategy section. */
  section: Record<string, unknown> & { name: string };
  /** The same hyperparameters under Flower's keyword names ({} compares the defaults too). */
  flower: Record<string, number>;
}

const CASES: Case[] = [
  { id: 'fedavg', section: { name: 'fedavg' }, flower: {} },
  { id: 'fedprox mu=0.1', section: { name: 'fedprox', proximalMu: 0.1 }, flower: { proximal_mu: 0.1 } },
  { id: 'fedavgm defaults', section: { name: 'fedavgm' }, flower: {} },
  { id: 'fedavgm lr=1 momentum=0.9', section: { name: 'fedavgm', serverMomentum: 0.9 }, flower: { server_momentum: 0.9 } },
  { id: 'fedavgm lr=0.7 momentum=0.5', section: { name: 'fedavgm', serverLearningRate: 0.7, serverMomentum: 0.5 }, flower: { server_learning_rate: 0.7, server_momentum: 0.5 } },
  { id: 'fedavgm lr=1.5 momentum=0', section: { name: 'fedavgm', serverLearningRate: 1.5 }, flower: { server_learning_rate: 1.5 } },
  { id: 'fedadagrad defaults', section: { name: 'fedadagrad' }, flower: {} },
  { id: 'fedadagrad eta=0.03 tau=1e-3', section: { name: 'fedadagrad', eta: 0.03, tau: 1e-3 }, flower: { eta: 0.03, tau: 1e-3 } },
  { id: 'fedadam defaults', section: { name: 'fedadam' }, flower: {} },
  { id: 'fedadam eta=0.05 b1=0.8 b2=0.95 tau=1e-3', section: { name: 'fedadam', eta: 0.05, beta1: 0.8, beta2: 0.95, tau: 1e-3 }, flower: { eta: 0.05, beta_1: 0.8, beta_2: 0.95, tau: 1e-3 } },
  { id: 'fedyogi defaults', section: { name: 'fedyogi' }, flower: {} },
  { id: 'fedyogi eta=0.05 b1=0.5 b2=0.9 tau=1e-2', section: { name: 'fedyogi', eta: 0.05, beta1: 0.5, beta2: 0.9, tau: 1e-2 }, flower: { eta: 0.05, beta_1: 0.5, beta_2: 0.9, tau: 1e-2 } },
];

const SHAPES = [[24, 16], [16], [16, 5], [5]];
const ROUNDS = 6;
const NODES = 5;

/** Seeded inputs: initial weights of magnitude 0.8..1.6 with random signs, and per round each node's weights. */
function inputs(seed: number): { initial: Weights; rounds: Array<{ round: number; updates: Array<{ numExamples: number; weights: Weights }> }> } {
  const rand = mulberry32(seed);
  const tensor = (shape: number[], i: number, values: Float32Array) => ({ name: `t${i}`, shape, values });
  const initial: Weights = SHAPES.map((shape, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return tensor(shape, i, Float32Array.from({ length: n }, () => (rand() < 0.5 ? -1 : 1) * (0.8 + 0.8 * rand())));
  });
  // A drift the nodes share (each round's), plus each node's own noise: updates near the initial weights.
  const rounds = Array.from({ length: ROUNDS }, (_, r) => {
    const drift = initial.map((t) => Float32Array.from(t.values, () => 0.04 * (rand() - 0.5)));
    // Partial participation: one node sits out every third round.
    const nodes = Array.from({ length: NODES }, (_, k) => k).filter((k) => (r + 1) % 3 !== 0 || k !== r % NODES);
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

function strategyOf(section: Record<string, unknown>): Strategy {
  const options = parseStrategySection(section);
  const definition = STRATEGIES[options.name] as StrategyDefinition;
  return definition.create(options, { config: CONFIG, seed: 1 });
}

/** FedStream's weights after each round; `restartAfter` rebuilds the strategy from its state() there, as recovery does. */
function runOurs(section: Record<string, unknown>, data: ReturnType<typeof inputs>, restartAfter?: number): Float32Array[][] {
  let strategy = strategyOf(section);
  let base = data.initial;
  const out: Float32Array[][] = [];
  for (const { round, updates } of data.rounds) {
    const ctx = { round, baseVersion: round - 1, knownNodes: [] };
    expect(strategy.configureRound(ctx).config).toMatchObject(CONFIG);
    const agg = strategy.begin(base, ctx);
    updates.forEach((u, k) => agg.fold({ updateId: `r${round}-u${k}`, nodeId: `node-${k}`, round, numExamples: u.numExamples, weights: u.weights, metrics: {} }));
    base = agg.finish([]).weights;
    out.push(base.map((t) => t.values));
    if (round === restartAfter) {
      const state = strategy.state?.();
      strategy = strategyOf(section);
      if (state) strategy.restore!(state);
    }
  }
  return out;
}

const reference = useReferencePython('strategies-flower');

type Request = { cases: Array<Record<string, unknown>> };
type Reference = { flwr: string; results: Record<string, number[][][]> };

async function flower(request: Request): Promise<Reference> {
  return reference.run<Reference>(FLOWER_REFERENCE, request, 120_000);
}

/** The largest |ours − Flower| / |Flower| over every element of every round, and where. */
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
        expect(Math.abs(b[j]!)).toBeGreaterThan(0.3);
        const rel = Math.abs(a[j]! - b[j]!) / Math.abs(b[j]!);
        if (rel > worst) [worst, where] = [rel, `round ${r + 1} tensor ${t} [${j}]: ours ${a[j]} Flower ${b[j]}`];
      }
    }
  }
  return { worst, where };
}

describe(`FedStream's strategies equal Flower ${FLWR_VERSION}'s on identical inputs`, () => {
  const data = inputs(20_261_130);
  const ours = new Map(CASES.map((c) => [c.id, runOurs(c.section, data)]));
  let sameBase: Reference | undefined;
  let freeRunning: Reference | undefined;
  const table = new Map<string, { sameBase: number; freeRunning: number }>();

  beforeAll(async () => {
    if (!reference.python) return;
    const initial = data.initial.map((t) => ({ shape: t.shape, values: Array.from(t.values) }));
    const request = (dtype: 'float32' | 'float64', withBase: boolean): Request => ({
      cases: CASES.map((c) => ({
        id: c.id, strategy: c.section.name, options: c.flower, dtype, initial,
        rounds: data.rounds.map((r, i) => ({
          round: r.round,
          // Round r starts from what FedStream published after round r − 1 (the initial weights for round 1).
          base: withBase ? (i === 0 ? data.initial : ours.get(c.id)![i - 1]!.map((values) => ({ values }))).map((t) => Array.from(t.values)) : null,
          updates: r.updates.map((u) => ({ numExamples: u.numExamples, tensors: u.weights.map((t) => Array.from(t.values)) })),
        })),
      })),
    });
    [sameBase, freeRunning] = await Promise.all([flower(request('float64', true)), flower(request('float32', false))]);
  }, 180_000);

  /**
   * The claim: given the same base weights and the same updates each round, with state carried over on each side
   * (m_t, v_t, momentum evolve independently in each), the new weights agree within 1e-6. Flower gets the values as
   * float64 arrays, so what is measured is FedStream's arithmetic against Flower's equations, not against the
   * rounding of Flower's float32 fold (see the next test).
   */
  it.for(CASES)('$id: same base and updates every round → new weights within 1e-6 relative of Flower\'s', (c, ctx) => {
    if (reference.unavailable) return ctx.skip(`flwr unavailable outside CI: ${reference.unavailable}`);
    expect(sameBase!.flwr).toBe(FLWR_VERSION);
    const { worst, where } = compare(ours.get(c.id)!, sameBase!.results[c.id]!);
    table.set(c.id, { ...table.get(c.id) ?? { freeRunning: NaN }, sameBase: worst });
    expect(worst, where).toBeLessThan(TOLERANCE);
    // The weights did move (a strategy that returned its base would not pass for FedAvg's mean either).
    expect(ours.get(c.id)!.at(-1)![0]![0]).not.toBe(data.initial[0]!.values[0]);
  });

  /**
   * Flower run on its own from the initial weights, fed float32 arrays as its clients would: each side keeps its own
   * global model. Flower's float32 fold rounds at every update and its adaptive steps divide by small pseudo-gradients,
   * so the two drift apart by more than the float32 rounding (Flower's own error against exact arithmetic); bounded
   * here at 1e-4 and reported.
   */
  it.for(CASES)('$id: free-running from the initial weights, Flower in float32 → within 1e-4', (c, ctx) => {
    if (reference.unavailable) return ctx.skip(`flwr unavailable outside CI: ${reference.unavailable}`);
    const { worst, where } = compare(ours.get(c.id)!, freeRunning!.results[c.id]!);
    table.set(c.id, { ...table.get(c.id) ?? { sameBase: NaN }, freeRunning: worst });
    expect(worst, where).toBeLessThan(1e-4);
  });

  it.each(CASES)('$id: restored from its state() after round 3, it goes on bit for bit', (c) => {
    const straight = ours.get(c.id)!;
    const restarted = runOurs(c.section, data, 3);
    for (let r = 0; r < ROUNDS; r++) {
      for (let t = 0; t < SHAPES.length; t++) expect(Buffer.from(restarted[r]![t]!.buffer).equals(Buffer.from(straight[r]![t]!.buffer)), `round ${r + 1} tensor ${t}`).toBe(true);
    }
  });

  it('reports the largest relative difference per strategy', (ctx) => {
    if (reference.unavailable) return ctx.skip(`flwr unavailable outside CI: ${reference.unavailable}`);
    expect([...table.keys()].sort()).toEqual(CASES.map((c) => c.id).sort());
    process.stderr.write(`[strategies-flower] max |ours − Flower| / |Flower| over ${ROUNDS} rounds (same base, float64 | free-running, float32):\n${
      CASES.map((c) => `  ${c.id.padEnd(44)} ${table.get(c.id)!.sameBase.toExponential(2)}  ${table.get(c.id)!.freeRunning.toExponential(2)}`).join('\n')}\n`);
  });
});
