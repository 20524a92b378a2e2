import { z } from 'zod';
import type { Weights } from '../../codec/index.ts';
import { FedStreamError } from '../../common/index.ts';
import type { UpdateLogReader } from '../log-reread.ts';
import type { AcceptedUpdate, AggregateResult, Aggregation, Rejection, RoundContext, RoundPlan, Strategy } from '../strategy.ts';
import { FedAvg, type FedAvgOptions } from './fedavg.ts';
import { aggregateFromLog, blockSize, type BlockRule, type KeptUpdate } from './spill.ts';

export type { BlockRule, KeptUpdate } from './spill.ts';

/**
 * What the robust strategies share (median, trimmed mean, Krum; after Flower's `FedMedian(FedAvg)`, `FedTrimmedAvg`,
 * `Krum`, which override `aggregate_fit` only): FedAvg's round (selection, round config), and an aggregation that
 * needs every accepted update of the round at once, because a coordinate-wise order statistic or a pairwise distance
 * cannot be folded one update at a time.
 *
 * Memory: each update is kept as one flat float32 vector of the model's P parameters (4·P bytes), so a round of n
 * updates holds 4·n·P bytes, while that stays within `memoryBudgetBytes` (the manifest's `strategy.memoryBudgetBytes`).
 * Beyond it, the aggregation drops what it kept and re-reads the round's accepted updates from the updates topic in
 * blocks of coordinates, each block of all n updates within the budget (strategies/spill.ts; docs/strategies.md,
 * "Memory of the robust strategies"): the same bits as in memory, at the price of reading the round's updates once
 * per block. Where the updates did not come from a log (a test's fold), the fold that would pass the budget throws
 * STRATEGY_MEMORY_BUDGET naming the budget, the update count and the sizes, before it allocates.
 */
export interface BufferedOptions extends FedAvgOptions {
  /** Largest number of bytes the round's updates may take in memory (4 bytes per parameter per update). */
  memoryBudgetBytes: number;
}

/** 1 GiB: 67 updates of a 4M-parameter model, or 2,700 of a 100k one. */
export const DEFAULT_MEMORY_BUDGET_BYTES = 1024 ** 3;

/** `strategy.memoryBudgetBytes`, bytes, ≥ 1 MiB (default 1 GiB). */
export const memoryBudgetOption = z.number().int().min(1024 ** 2, 'expected at least 1 MiB (1048576)').max(Number.MAX_SAFE_INTEGER).default(DEFAULT_MEMORY_BUDGET_BYTES);

const MiB = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`;

function budgetError(budget: number, count: number, perUpdate: number, strategy: string, reason: string): FedStreamError {
  return new FedStreamError(
    'STRATEGY_MEMORY_BUDGET',
    `${strategy}: ${reason}: ${count} updates of ${perUpdate} bytes (${MiB(perUpdate)}) each need ${count * perUpdate} bytes (${MiB(count * perUpdate)}), over strategy.memoryBudgetBytes = ${budget} (${MiB(budget)}); raise the budget, select fewer nodes (strategy.fraction) or use a strategy that folds (fedavg)`,
    { details: { strategy, memoryBudgetBytes: budget, updates: count, bytesPerUpdate: perUpdate, bytesNeeded: count * perUpdate } },
  );
}

/**
 * Keeps the round's updates within the budget and applies the strategy's rule at `finish`. Past the budget, when the
 * round's updates all came from the log (`ctx.log`), it drops the vectors it kept and keeps only where each update
 * lies; `settle` then re-reads them in blocks of coordinates (strategies/spill.ts). Without a log, the update that
 * would pass the budget is refused with STRATEGY_MEMORY_BUDGET.
 */
export class BufferedAggregation implements Aggregation {
  private readonly vectors: Float32Array[] = [];
  private readonly updates: KeptUpdate[] = [];
  private readonly metricSums = new Map<string, { sum: number; examples: number }>();
  private readonly parameters: number;
  private spilled = false;
  private settled?: { values: Float32Array; shares: number[]; ruleMetrics: Record<string, number>; passes: number; blockSize: number };

  constructor(
    private readonly base: Weights,
    private readonly strategy: string,
    private readonly budget: number,
    private readonly rule: (updates: readonly KeptUpdate[]) => BlockRule,
    private readonly log?: UpdateLogReader,
  ) {
    this.parameters = base.reduce((a, t) => a + t.values.length, 0);
  }

  get count(): number {
    return this.updates.length;
  }

  /** True once the round's updates are past the budget and will be re-read from the log. */
  get fromLog(): boolean {
    return this.spilled;
  }

  fold(update: AcceptedUpdate): void {
    if (!(update.numExamples > 0)) throw new FedStreamError('INTERNAL', `update ${update.updateId} has numExamples ${update.numExamples}; validation should have rejected it`);
    if (update.weights.length !== this.base.length) throw new FedStreamError('INTERNAL', `update ${update.updateId} has ${update.weights.length} tensors, expected ${this.base.length}`);
    const perUpdate = 4 * this.parameters;
    const count = this.updates.length + 1;
    const kept: KeptUpdate = { updateId: update.updateId, numExamples: update.numExamples };
    if (update.source) kept.source = update.source;
    if (update.deltaScales?.length) kept.deltaScales = [...update.deltaScales];
    if (!this.spilled && count * perUpdate > this.budget) {
      const why = `update ${update.updateId} would be the round's ${count}th kept in memory`;
      if (!this.log || !kept.source || this.updates.some((u) => !u.source)) throw budgetError(this.budget, count, perUpdate, this.strategy, why);
      // Beyond the budget: the log holds the updates; keep only where they lie.
      this.spilled = true;
      this.vectors.length = 0;
    }
    if (this.spilled) {
      if (blockSize(this.budget, this.parameters, count) < 1) {
        throw budgetError(this.budget, count, perUpdate, this.strategy, `not even one coordinate of each of the round's ${count} updates fits beside one decoded update`);
      }
    } else {
      const flat = new Float32Array(this.parameters);
      let at = 0;
      for (let t = 0; t < update.weights.length; t++) {
        const v = update.weights[t]!.values;
        if (v.length !== this.base[t]!.values.length) throw new FedStreamError('INTERNAL', `update ${update.updateId} tensor ${t} has ${v.length} values, expected ${this.base[t]!.values.length}`);
        flat.set(v, at);
        at += v.length;
      }
      this.vectors.push(flat);
    }
    this.updates.push(kept);
    for (const [k, v] of Object.entries(update.metrics)) {
      if (!Number.isFinite(v)) continue;
      const m = this.metricSums.get(k) ?? { sum: 0, examples: 0 };
      m.sum += v * update.numExamples;
      m.examples += update.numExamples;
      this.metricSums.set(k, m);
    }
  }

  /** Beyond the budget: re-reads the round's updates from the log and computes the result (strategies/spill.ts). */
  async settle(): Promise<void> {
    if (!this.spilled || this.settled || this.updates.length === 0) return;
    const rule = this.rule(this.updates);
    const b = blockSize(this.budget, this.parameters, this.updates.length);
    const r = await aggregateFromLog({ reader: this.log!, base: this.base, updates: this.updates, rule, blockSize: b, strategy: this.strategy });
    this.settled = { values: r.values, shares: rule.shares(), ruleMetrics: rule.metrics?.() ?? {}, passes: r.passes, blockSize: b };
  }

  dispose(): void {
    this.vectors.length = 0;
  }

  finish(_rejections: Rejection[]): AggregateResult {
    if (this.updates.length === 0) throw new FedStreamError('ROUND_ABANDONED', 'no accepted update to aggregate');
    let values: Float32Array;
    let shares: number[];
    const metrics: Record<string, number> = {};
    if (this.spilled) {
      if (!this.settled) throw new FedStreamError('INTERNAL', `${this.strategy}: the round's updates are past the memory budget and finish was called before settle re-read them`);
      ({ values, shares } = this.settled);
      Object.assign(metrics, this.settled.ruleMetrics);
      // How the round was computed: passes over the log and coordinates per block (absent when in memory).
      metrics.logPasses = this.settled.passes;
      metrics.blockCoordinates = this.settled.blockSize;
    } else {
      const rule = this.rule(this.updates);
      values = new Float32Array(this.parameters);
      rule.scan?.(this.vectors);
      rule.combine(this.vectors, values);
      shares = rule.shares();
      Object.assign(metrics, rule.metrics?.());
    }
    const total = this.updates.reduce((a, u) => a + u.numExamples, 0);
    Object.assign(metrics, { totalExamples: total, contributors: this.updates.length });
    for (const [k, m] of this.metricSums) if (m.examples > 0) metrics[`train_${k}`] = m.sum / m.examples;
    const contributionWeights = new Map(this.updates.map((u, k) => [u.updateId, shares[k]!]));
    let at = 0;
    const weights: Weights = this.base.map((t) => {
      const v = values.slice(at, at + t.values.length);
      at += t.values.length;
      return { name: t.name, shape: [...t.shape], values: v };
    });
    this.dispose();
    this.settled = undefined;
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
    const parameters = base.reduce((a, t) => a + t.values.length, 0);
    const perUpdate = 4 * parameters;
    const budget = this.common.memoryBudgetBytes;
    if (perUpdate > budget) throw budgetError(budget, 1, perUpdate, this.name, 'not even one update of this model fits');
    // The nodes this round asks for, when known: a round that could hold them neither in memory nor in blocks re-read
    // from the log is refused before any is read.
    const expected = this.configureRound(ctx).selectedNodes.length || ctx.knownNodes.length;
    if (expected * perUpdate > budget && (!ctx.log || blockSize(budget, parameters, expected) < 1)) {
      throw budgetError(budget, expected, perUpdate, this.name, `round ${ctx.round} selects ${expected} nodes${ctx.log ? ', too many even for blocks re-read from the log' : ''}`);
    }
    return new BufferedAggregation(base, this.name, budget, (u) => this.rule(u), ctx.log);
  }

  /** The strategy's rule for a round of these updates (a fresh one per round: Krum's keeps its distances). */
  protected abstract rule(updates: readonly KeptUpdate[]): BlockRule;
}

/** Each of n updates' share in a rule that ignores examples (median, trimmed mean): 1/n. */
export function uniform(n: number): number[] {
  return Array.from({ length: n }, () => 1 / n);
}
