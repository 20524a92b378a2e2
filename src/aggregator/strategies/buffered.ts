import { z } from 'zod';
import type { Weights } from '../../codec/index.ts';
import { FedStreamError } from '../../common/index.ts';
import type { AcceptedUpdate, AggregateResult, Aggregation, Rejection, RoundContext, RoundPlan, Strategy } from '../strategy.ts';
import { FedAvg, type FedAvgOptions } from './fedavg.ts';

/**
 * What the robust strategies share (median, trimmed mean, Krum; after Flower's `FedMedian(FedAvg)`, `FedTrimmedAvg`,
 * `Krum`, which override `aggregate_fit` only): FedAvg's round (selection, round config), and an aggregation that
 * keeps every accepted update of the round in memory, because a coordinate-wise order statistic or a pairwise
 * distance cannot be folded one update at a time.
 *
 * Memory: each update is kept as one flat float32 vector of the model's P parameters (4·P bytes), so a round of n
 * updates holds 4·n·P bytes, bounded by `memoryBudgetBytes` (the manifest's `strategy.memoryBudgetBytes`). The fold
 * that would take the round past it throws STRATEGY_MEMORY_BUDGET naming the budget, the update count and the sizes,
 * before it allocates: never an out-of-memory crash. `begin` refuses a round up front when the known nodes alone
 * could not fit. Beyond the budget, the next step is to re-read the round's accepted updates from the updates topic
 * in blocks of coordinates (docs/strategies.md, "Memory of the robust strategies").
 */
export interface BufferedOptions extends FedAvgOptions {
  /** Largest number of bytes the round's updates may take in memory (4 bytes per parameter per update). */
  memoryBudgetBytes: number;
}

/** 1 GiB: 67 updates of a 4M-parameter model, or 2,700 of a 100k one. */
export const DEFAULT_MEMORY_BUDGET_BYTES = 1024 ** 3;

/** `strategy.memoryBudgetBytes`, bytes, ≥ 1 MiB (default 1 GiB). */
export const memoryBudgetOption = z.number().int().min(1024 ** 2, 'expected at least 1 MiB (1048576)').max(Number.MAX_SAFE_INTEGER).default(DEFAULT_MEMORY_BUDGET_BYTES);

/** The round's updates, as the robust kernels take them: n flat vectors of P float32, with their examples. */
export interface RoundUpdates {
  vectors: Float32Array[];
  updates: Array<{ updateId: string; numExamples: number }>;
}

/** What a robust strategy does with the round's updates: the new flat weights, and each update's share in them. */
export type RobustRule = (round: RoundUpdates) => { values: Float32Array; weights: number[] };

const MiB = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;

function budgetError(budget: number, count: number, perUpdate: number, strategy: string, reason: string): FedStreamError {
  return new FedStreamError(
    'STRATEGY_MEMORY_BUDGET',
    `${strategy}: ${reason}: ${count} updates of ${perUpdate} bytes (${MiB(perUpdate)}) each need ${count * perUpdate} bytes (${MiB(count * perUpdate)}), over strategy.memoryBudgetBytes = ${budget} (${MiB(budget)}); raise the budget, select fewer nodes (strategy.fraction) or use a strategy that folds (fedavg)`,
    { details: { strategy, memoryBudgetBytes: budget, updates: count, bytesPerUpdate: perUpdate, bytesNeeded: count * perUpdate } },
  );
}

/** Keeps the round's updates (within the budget) and applies `rule` at `finish`. */
export class BufferedAggregation implements Aggregation {
  private readonly vectors: Float32Array[] = [];
  private readonly updates: Array<{ updateId: string; numExamples: number }> = [];
  private readonly metricSums = new Map<string, { sum: number; examples: number }>();
  private readonly parameters: number;

  constructor(private readonly base: Weights, private readonly strategy: string, private readonly budget: number, private readonly rule: RobustRule) {
    this.parameters = base.reduce((a, t) => a + t.values.length, 0);
  }

  get count(): number {
    return this.vectors.length;
  }

  fold(update: AcceptedUpdate): void {
    if (!(update.numExamples > 0)) throw new FedStreamError('INTERNAL', `update ${update.updateId} has numExamples ${update.numExamples}; validation should have rejected it`);
    if (update.weights.length !== this.base.length) throw new FedStreamError('INTERNAL', `update ${update.updateId} has ${update.weights.length} tensors, expected ${this.base.length}`);
    const perUpdate = 4 * this.parameters;
    const count = this.vectors.length + 1;
    if (count * perUpdate > this.budget) throw budgetError(this.budget, count, perUpdate, this.strategy, `update ${update.updateId} would be the round's ${count}th kept in memory`);
    const flat = new Float32Array(this.parameters);
    let at = 0;
    for (let t = 0; t < update.weights.length; t++) {
      const v = update.weights[t]!.values;
      if (v.length !== this.base[t]!.values.length) throw new FedStreamError('INTERNAL', `update ${update.updateId} tensor ${t} has ${v.length} values, expected ${this.base[t]!.values.length}`);
      flat.set(v, at);
      at += v.length;
    }
    this.vectors.push(flat);
    this.updates.push({ updateId: update.updateId, numExamples: update.numExamples });
    for (const [k, v] of Object.entries(update.metrics)) {
      if (!Number.isFinite(v)) continue;
      const m = this.metricSums.get(k) ?? { sum: 0, examples: 0 };
      m.sum += v * update.numExamples;
      m.examples += update.numExamples;
      this.metricSums.set(k, m);
    }
  }

  dispose(): void {
    this.vectors.length = 0;
  }

  finish(_rejections: Rejection[]): AggregateResult {
    if (this.vectors.length === 0) throw new FedStreamError('ROUND_ABANDONED', 'no accepted update to aggregate');
    const { values, weights: shares } = this.rule({ vectors: this.vectors, updates: this.updates });
    const total = this.updates.reduce((a, u) => a + u.numExamples, 0);
    const metrics: Record<string, number> = { totalExamples: total, contributors: this.updates.length };
    for (const [k, m] of this.metricSums) if (m.examples > 0) metrics[`train_${k}`] = m.sum / m.examples;
    const contributionWeights = new Map(this.updates.map((u, k) => [u.updateId, shares[k]!]));
    let at = 0;
    const weights: Weights = this.base.map((t) => {
      const v = values.slice(at, at + t.values.length);
      at += t.values.length;
      return { name: t.name, shape: [...t.shape], values: v };
    });
    this.dispose();
    return { weights, metrics, contributionWeights };
  }
}

/** The base of FedMedian, FedTrimmedAvg and Krum: FedAvg's round, a {@link BufferedAggregation} with the strategy's rule. */
export abstract class RobustStrategy implements Strategy {
  abstract readonly name: string;
  private readonly selection: FedAvg;

  protected constructor(private readonly common: BufferedOptions) {
    this.selection = new FedAvg(common);
  }

  configureRound(ctx: RoundContext): RoundPlan {
    return this.selection.configureRound(ctx);
  }

  begin(base: Weights, ctx: RoundContext): Aggregation {
    const perUpdate = 4 * base.reduce((a, t) => a + t.values.length, 0);
    const budget = this.common.memoryBudgetBytes;
    if (perUpdate > budget) throw budgetError(budget, 1, perUpdate, this.name, 'not even one update of this model fits');
    // The nodes this round asks for, when known: a round that could not hold them all is refused before any is read.
    const expected = this.configureRound(ctx).selectedNodes.length || ctx.knownNodes.length;
    if (expected * perUpdate > budget) throw budgetError(budget, expected, perUpdate, this.name, `round ${ctx.round} selects ${expected} nodes`);
    return new BufferedAggregation(base, this.name, budget, (r) => this.rule(r));
  }

  protected abstract rule(round: RoundUpdates): { values: Float32Array; weights: number[] };
}

/** Each of n updates' share in a rule that ignores examples (median, trimmed mean): 1/n. */
export function uniform(n: number): number[] {
  return Array.from({ length: n }, () => 1 / n);
}
