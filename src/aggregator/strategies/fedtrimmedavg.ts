import { z } from 'zod';
import { trimmedMean } from '../kernels/index.ts';
import { type BlockRule, type BufferedOptions, type KeptUpdate, RobustStrategy, memoryBudgetOption, uniform } from './buffered.ts';
import { fractionOption } from './fedavg.ts';

/**
 * FedTrimmedAvg: the new weights are the coordinate-wise β-trimmed mean of the round's updates.
 *
 * Yin, Chen, Ramchandran, Bartlett. "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates".
 * ICML 2018, Definition 2 (coordinate-wise trimmed mean), Theorem 4: with a fraction α ≤ β < 1/2 of Byzantine
 * updates, the trimmed mean of each coordinate ignores them. Per coordinate j, with U_j the n values sorted:
 *
 *     w_{t+1, j} = 1 / (n − 2⌊βn⌋) · Σ_{x ∈ U_j[⌊βn⌋ .. n − ⌊βn⌋)} x
 *
 * Examples are ignored, as Flower 1.42's `FedTrimmedAvg` (flwr/server/strategy/fedtrimmedavg.py,
 * `aggregate_trimmed_avg`, `_trim_mean`), which this equals on identical inputs (test/unit/strategies-flower.test.ts).
 * Note that ⌊βn⌋ is 0 when βn < 1: with β = 0.2 at least 5 updates are needed for anything to be cut.
 * Memory: every update of the round (4 bytes per parameter each), bounded by `memoryBudgetBytes`.
 */
export interface FedTrimmedAvgOptions extends BufferedOptions {
  /** β, the fraction cut from each end, in [0, 0.5). */
  beta: number;
}

/** FedTrimmedAvg's section of a manifest; the default β is Flower 1.42's (`beta=0.2`). */
export const fedtrimmedavgOptions = z.object({
  name: z.literal('fedtrimmedavg'),
  fraction: fractionOption,
  beta: z.number().min(0, 'expected a number in [0, 0.5)').lt(0.5, 'expected a number in [0, 0.5)').default(0.2),
  memoryBudgetBytes: memoryBudgetOption,
}).strict();

export class FedTrimmedAvg extends RobustStrategy {
  readonly name = 'fedtrimmedavg';
  constructor(private readonly o: FedTrimmedAvgOptions) {
    super(o);
  }

  protected rule(updates: readonly KeptUpdate[]): BlockRule {
    return { combine: (rows, out) => trimmedMean(rows, this.o.beta, out), shares: () => uniform(updates.length) };
  }
}
