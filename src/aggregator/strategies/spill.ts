/**
 * The robust strategies beyond their memory budget: the round's accepted updates are read again from the updates
 * topic, in blocks of coordinates, so that one block of all n updates fits the budget whatever n.
 *
 * The Kafka log already holds every update the round accepted (the aggregator commits the consumed offsets only with
 * the round's version, so they are all still there, at the positions noted at fold time). With P parameters, n
 * updates and a budget of M bytes, a block has
 *
 *     B = ⌊(M − 4·P) / (4·n)⌋ coordinates
 *
 * (4·P bytes for the one update decoded at a time, 4·n·B for the block of every update), and a pass over the log
 * reads each update once and keeps its coordinates [b, b + B). The rule (buffered.ts `BlockRule`) sees the blocks in
 * coordinate order: Krum's distances are running sums continued block after block, the median's and trimmed mean's
 * coordinates are each their own; so the result is the same, bit for bit, as in memory. Cost: ⌈P / B⌉ passes of
 * `combine`, each reading the round's n·4·P bytes from the broker and decoding them; for Krum, as many passes of
 * `scan` first, then the `combine` passes read only the m updates it kept (`reads`), in blocks of
 * B_m = min(P, ⌊n·B / m⌋) coordinates (the same budget): ⌈P / B_m⌉ passes (for Krum, m = 1, one once n·B ≥ P). Each update re-read is checked to be the one folded (its update id), and a clipped update is clipped again
 * with the scale noted at fold time (kernels/robust.ts `scaleFromBase`, the same float32 rounding).
 */
import type { Weights } from '../../codec/index.ts';
import { unpackTensors } from '../../codec/index.ts';
import { FedStreamError } from '../../common/index.ts';
import { decodeView } from '../../protocol/index.ts';
import { scaleFromBase } from '../kernels/index.ts';
import type { LogPosition, UpdateLogReader } from '../log-reread.ts';

/** What a robust rule knows of each update of the round, in log order. */
export interface KeptUpdate {
  updateId: string;
  numExamples: number;
  /** Where it lies in the updates topic, to be read again beyond the budget (strategies/spill.ts). */
  source?: LogPosition;
  /** The scales of its change from the base that wrappers applied before it was folded (Clipped, central DP), in order. */
  deltaScales?: number[];
}

/**
 * A robust rule as a computation over blocks of coordinates, so that the same code runs on the whole vectors (in
 * memory) and on blocks re-read from the log (beyond the budget), with the same bits either way: `scan` (optional)
 * sees every block, in coordinate order, before any `combine` (Krum's distances); `combine` computes the new
 * weights' coordinates of a block from the n updates' values there (each coordinate on its own); `shares` is each
 * update's share in the result, after both. `rows[k]` is update k's values in the block, all of one length (but
 * for the rows `reads` leaves out, which are empty).
 */
export interface BlockRule {
  scan?(rows: readonly Float32Array[]): void;
  /**
   * The updates `combine` reads (indices in log order, ascending), asked once after every `scan`; absent: all of
   * them. Beyond the budget only these are re-read, and the other rows `combine` is given are empty (length 0).
   */
  reads?(): readonly number[];
  combine(rows: readonly Float32Array[], out: Float32Array): void;
  shares(): number[];
  /** Optional: what the rule wants the version's metrics to say about the round (after `shares`). */
  metrics?(): Record<string, number>;
}

/** Coordinates per block for n updates of P parameters within `budget` bytes (< 1: the budget cannot do it). */
export function blockSize(budget: number, parameters: number, n: number): number {
  return Math.min(parameters, Math.floor((budget - 4 * parameters) / (4 * n)));
}

export interface FromLog {
  reader: UpdateLogReader;
  base: Weights;
  updates: readonly KeptUpdate[];
  rule: BlockRule;
  blockSize: number;
  strategy: string;
}

/** Runs `rule` over the round's updates re-read from the log, block after block. Returns the new flat weights and the number of passes. */
export async function aggregateFromLog(o: FromLog): Promise<{ values: Float32Array; passes: number }> {
  const p = o.base.reduce((a, t) => a + t.values.length, 0);
  const n = o.updates.length;
  const at: LogPosition[] = o.updates.map((u) => {
    if (!u.source) throw new FedStreamError('INTERNAL', `${o.strategy}: update ${u.updateId} has no position in the log to be re-read from`);
    return u.source;
  });
  // One decoded update at a time (its tensors), and the block of every update.
  const scratch = o.base.map((t) => new Float32Array(t.values.length));
  const baseFlat = new Float32Array(p);
  let off = 0;
  for (const t of o.base) {
    baseFlat.set(t.values, off);
    off += t.values.length;
  }
  // The block of every update, n·B values; a pass of fewer updates (`reads`) takes longer rows of the same memory.
  const block = new Float32Array(n * o.blockSize);
  const empty = new Float32Array(0);
  const out = new Float32Array(p);
  let passes = 0;

  /** Reads coordinates [from, from + len) of the updates `which` (ascending indices); rows of the others are empty. */
  const pass = async (which: readonly number[], from: number, len: number): Promise<Float32Array[]> => {
    const rows = Array.from({ length: n }, () => empty);
    which.forEach((k, r) => { rows[k] = block.subarray(r * len, (r + 1) * len); });
    await o.reader.read(which.map((k) => at[k]!), (r, payload) => {
      const k = which[r]!;
      const u = o.updates[k]!;
      const record = decodeView('ModelUpdate', payload.bytes);
      if (record.updateId !== u.updateId) {
        throw new FedStreamError('STRATEGY_REREAD_MISMATCH', `${o.strategy}: the update at ${payload.topic}[${payload.partition}]@${payload.firstOffset} is ${record.updateId}, but the round folded ${u.updateId} from there`, {
          details: { topic: payload.topic, partition: payload.partition, offset: payload.firstOffset, expected: u.updateId, found: record.updateId },
        });
      }
      unpackTensors(record.tensors, scratch);
      copyRange(scratch, from, len, rows[k]!);
      for (const s of u.deltaScales ?? []) scaleFromBase(rows[k]!, baseFlat.subarray(from, from + len), s, rows[k]!);
    });
    passes++;
    return rows;
  };

  const all = o.updates.map((_, k) => k);
  if (o.rule.scan) {
    for (let from = 0; from < p; from += o.blockSize) o.rule.scan(await pass(all, from, Math.min(o.blockSize, p - from)));
  }
  const which = o.rule.reads?.() ?? all;
  if (which.length === 0 || which.some((k, r) => !Number.isInteger(k) || k < 0 || k >= n || (r > 0 && k <= which[r - 1]!))) {
    throw new FedStreamError('INTERNAL', `${o.strategy}: the rule reads updates [${which.join(', ')}]; expected ascending indices below ${n}`);
  }
  // Fewer updates, longer blocks: m·B_m ≤ n·B, within the same budget.
  const size = Math.min(p, Math.floor((n * o.blockSize) / which.length));
  for (let from = 0; from < p; from += size) {
    const len = Math.min(size, p - from);
    o.rule.combine(await pass(which, from, len), out.subarray(from, from + len));
  }
  return { values: out, passes };
}

/** Copies the flat coordinates [from, from + len) of `tensors` (concatenated in order) into `dst`. */
function copyRange(tensors: readonly Float32Array[], from: number, len: number, dst: Float32Array): void {
  let start = 0;
  let written = 0;
  for (const t of tensors) {
    const end = start + t.length;
    if (end > from && written < len) {
      const a = Math.max(0, from + written - start);
      const b = Math.min(t.length, from + len - start);
      dst.set(t.subarray(a, b), written);
      written += b - a;
    }
    start = end;
    if (written >= len) break;
  }
}
