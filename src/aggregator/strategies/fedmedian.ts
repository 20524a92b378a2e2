import { z } from 'zod';
import { coordinateMedian } from '../kernels/index.ts';
import { type BlockRule, type BufferedOptions, type KeptUpdate, RobustStrategy, memoryBudgetOption, uniform } from './buffered.ts';
import { fractionOption } from './fedavg.ts';

/**
 * FedMedian: the new weights are the coordinate-wise median of the round's updates.
 *
 * Yin, Chen, Ramchandran, Bartlett. "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates".
 * ICML 2018, Definition 1 (coordinate-wise median), Theorem 1: with fewer than half the updates Byzantine, each
 * coordinate's median lies within the honest values' range, whatever the others send.
 *
 *     w_{t+1, j} = med{ w^1_{t+1, j}, …, w^n_{t+1, j} }     (even n: the mean of the two middle values)
 *
 * Examples are ignored (each update counts once), as Flower 1.42's `FedMedian` (flwr/server/strategy/fedmedian.py,
 * `aggregate_median`), which this equals on identical inputs (test/unit/strategies-flower.test.ts). The kernel:
 * kernels/robust.ts. Memory: every update of the round (4 bytes per parameter each), bounded by `memoryBudgetBytes`.
 */
export type FedMedianOptions = BufferedOptions;

/** FedMedian's section of a manifest. Flower's FedMedian has no option of its own. */
export const fedmedianOptions = z.object({
  name: z.literal('fedmedian'),
  fraction: fractionOption,
  memoryBudgetBytes: memoryBudgetOption,
}).strict();

export class FedMedian extends RobustStrategy {
  readonly name = 'fedmedian';
  constructor(o: FedMedianOptions) {
    super(o);
  }

  protected rule(updates: readonly KeptUpdate[]): BlockRule {
    return { combine: (rows, out) => coordinateMedian(rows, out), shares: () => uniform(updates.length) };
  }
}
