import { z } from 'zod';
import { accumulateSquaredDistances, krumScores, krumSelect } from '../kernels/index.ts';
import { type BlockRule, type BufferedOptions, type KeptUpdate, RobustStrategy, memoryBudgetOption } from './buffered.ts';
import { fractionOption } from './fedavg.ts';

/**
 * Krum and Multi-Krum: the new weights are the update closest to its n − f − 2 nearest neighbours (Krum), or the
 * example-weighted mean of the m such updates with the lowest scores (Multi-Krum).
 *
 * Blanchard, El Mhamdi, Guerraoui, Stainer. "Machine Learning with Adversaries: Byzantine Tolerant Gradient
 * Descent". NeurIPS 2017, §4: with f of n updates Byzantine (2f + 2 < n), i → k meaning x^k is one of the n − f − 2
 * updates closest to x^i,
 *
 *     s(i) = Σ_{i → k} ‖x^i − x^k‖²,      KR(x^1, …, x^n) = x^{i*},  i* = argmin_i s(i)
 *
 * and Multi-Krum (§4, "m-Krum") averages the m updates of lowest score. As Flower 1.42's `Krum`
 * (flwr/server/strategy/krum.py, `aggregate_krum`), which this equals on identical inputs
 * (test/unit/strategies-flower.test.ts): n − f − 2 is raised to 1 when smaller; `numClientsToKeep` = 0 is Krum, m > 0
 * Multi-Krum, whose mean is weighted by the kept updates' examples (Flower's `aggregate`; the paper's is unweighted)
 * over at most n − f updates (the paper's m ≤ n − f; Flower takes min(m, n), the f outliers too when a round is short);
 * metrics `krum_kept` and `krum_tolerates_f` (2f + 2 < n held: 1, else 0) say what the round could do;
 * ties go to the earlier update in log order. Kernels: kernels/robust.ts. Time O(n² · P) for the distances; memory:
 * every update of the round (4 bytes per parameter each), bounded by `memoryBudgetBytes`, and n² distances.
 */
export interface KrumOptions extends BufferedOptions {
  /** f, the number of Byzantine updates tolerated. */
  numMaliciousClients: number;
  /** m: 0 is Krum (one update chosen); m > 0 is Multi-Krum (the mean of the m best). */
  numClientsToKeep: number;
}

/** Krum's section of a manifest; defaults are Flower 1.42's (`num_malicious_clients=0, num_clients_to_keep=0`). */
export const krumOptions = z.object({
  name: z.literal('krum'),
  fraction: fractionOption,
  numMaliciousClients: z.number().int().min(0).default(0),
  numClientsToKeep: z.number().int().min(0).default(0),
  memoryBudgetBytes: memoryBudgetOption,
}).strict();

export class Krum extends RobustStrategy {
  readonly name = 'krum';
  constructor(private readonly o: KrumOptions) {
    super(o);
  }

  /**
   * Distances are running sums over the blocks (`scan`); the choice is made once they are complete; `combine` then
   * takes the chosen update's coordinates (Krum) or the example-weighted mean of the kept ones (Multi-Krum), each
   * coordinate on its own, as a float64 sum in the kept order rounded to float32 once. Only the kept updates' rows
   * are read by `combine` (`reads`).
   */
  protected rule(updates: readonly KeptUpdate[]): BlockRule {
    const n = updates.length;
    const d = new Float64Array(n * n);
    let kept: number[] | undefined;
    const f = this.o.numMaliciousClients;
    // Multi-Krum averages at most n − f updates (Blanchard et al. §4: m ≤ n − f); more would take in the f it is
    // meant to leave out whenever a round brings fewer updates than numClientsToKeep + f.
    const keep = Math.min(this.o.numClientsToKeep, Math.max(1, n - f));
    const choose = () => (kept ??= krumSelect(krumScores(d, n, f), keep));
    const multi = this.o.numClientsToKeep > 0;
    return {
      scan: (rows) => void accumulateSquaredDistances(rows, d),
      // Beyond the budget, the combining passes re-read only the kept updates (spill.ts).
      reads: () => [...choose()].sort((a, b) => a - b),
      combine: (rows, out) => {
        const k = choose();
        if (!multi) {
          out.set(rows[k[0]!]!);
          return;
        }
        const total = k.reduce((a, i) => a + updates[i]!.numExamples, 0);
        // The kept rows and their examples, in the kept order, out of the loop over coordinates.
        const kr = k.map((i) => rows[i]!);
        const kw = k.map((i) => updates[i]!.numExamples);
        const m = kr.length;
        for (let j = 0; j < out.length; j++) {
          let s = 0;
          for (let q = 0; q < m; q++) s += kr[q]![j]! * kw[q]!;
          out[j] = s / total;
        }
      },
      shares: () => {
        const k = choose();
        const weights = new Array<number>(n).fill(0);
        if (!multi) {
          weights[k[0]!] = 1;
          return weights;
        }
        const total = k.reduce((a, i) => a + updates[i]!.numExamples, 0);
        for (const i of k) weights[i] = updates[i]!.numExamples / total;
        return weights;
      },
      // The updates the result is made of, and whether the round had enough for f (2f + 2 < n, Blanchard et al.'s
      // condition: below it Krum tolerates fewer Byzantine updates than numMaliciousClients says, silently otherwise).
      metrics: () => ({ krum_kept: choose().length, krum_tolerates_f: 2 * f + 2 < n ? 1 : 0 }),
    };
  }
}
