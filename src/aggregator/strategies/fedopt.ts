import type { Weights } from '../../codec/index.ts';
import { FedStreamError } from '../../common/index.ts';
import type { Aggregation, RoundContext, RoundPlan, Strategy } from '../strategy.ts';
import { FedAvg, type FedAvgOptions, WeightedMean } from './fedavg.ts';

/**
 * What the server optimizers share (after Flower's `flwr/server/strategy/fedopt.py`, the base of its FedAdagrad,
 * FedAdam and FedYogi, and beside it `fedavgm.py`): the round is FedAvg's — the same selection of nodes, the same
 * round config, the same fold of each accepted update into the float64 example-weighted mean (WeightedMean, memory
 * O(parameters) whatever the number of nodes) — and only at `finish` does the optimizer take one step from the base
 * weights x_t, with the pseudo-gradient
 *
 *     Δ_t = Σ_k (n_k / n) x^k_{t+1} − x_t        (Reddi et al. 2021, Algorithm 2: the weighted mean of the nodes'
 *                                                 changes; FedAvgM uses −Δ_t, "pseudo_gradient" in Flower)
 *
 * and per-element state (momentum, first and second moments) that it keeps between rounds.
 *
 * Arithmetic: per element in float64 from the float32 base and the float64 mean (no rounding of the mean to float32
 * first, which would make Δ_t lose digits where the nodes moved little); the new weights and the state are rounded to
 * float32 when stored, so the state held in memory is exactly what `state()` writes and `restore()` reads back, and a
 * restarted aggregator continues bit for bit.
 *
 * State and recovery: the step changes the state in `Aggregation.finish` only (the version that follows stores it,
 * Strategy in ../strategy.ts). `state()` encodes it as
 *
 *     uint32 LE header length | header (JSON: format, strategy, steps, slots, tensors [{name, length}])
 *     | for each slot, for each tensor: float32 little-endian values
 *
 * i.e. 4 bytes per parameter per slot (FedAdam: m_t and v_t, 8 bytes per parameter: 32 MB at P = 4M, beside the
 * weights' 16 MB in the same ModelVersion). `restore()` refuses another strategy's state, another format or damaged
 * bytes (a wrong length, NaN, a negative second moment `v`) with STRATEGY_STATE_INVALID; a state whose tensors do not match the base weights is refused at the next step.
 */

/** Options every server optimizer takes besides its own hyperparameters: FedAvg's (selection, round config, limits). */
export type ServerOptimizerBase = FedAvgOptions;

/** The version of the encoding `state()` writes. */
export const FEDOPT_STATE_FORMAT = 'fedstream.fedopt/1';

interface StateHeader {
  format: string;
  strategy: string;
  /** Server steps taken so far (rounds finished by this strategy). */
  steps: number;
  /** Names of the per-element arrays, in the order they follow the header (e.g. `m`, `v`). */
  slots: string[];
  tensors: Array<{ name: string; length: number }>;
}

/** The state of a server optimizer: per slot (`m`, `v`, `momentum`), one float32 array per tensor of the model. */
export interface OptimizerState {
  steps: number;
  tensors: Array<{ name: string; length: number }>;
  slots: Map<string, Float32Array[]>;
}

const LITTLE_ENDIAN = new Uint8Array(Float32Array.of(1).buffer)[3] === 0x3f;

/** Encodes a server optimizer's state (see the file's comment for the layout). */
export function encodeOptimizerState(strategy: string, s: OptimizerState): Uint8Array {
  const header: StateHeader = { format: FEDOPT_STATE_FORMAT, strategy, steps: s.steps, slots: [...s.slots.keys()], tensors: s.tensors };
  const text = new TextEncoder().encode(JSON.stringify(header));
  const values = s.tensors.reduce((a, t) => a + t.length, 0) * s.slots.size;
  const out = new Uint8Array(4 + text.length + values * 4);
  const view = new DataView(out.buffer);
  view.setUint32(0, text.length, true);
  out.set(text, 4);
  let at = 4 + text.length;
  for (const arrays of s.slots.values()) {
    for (const a of arrays) {
      if (LITTLE_ENDIAN) out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
      else for (let j = 0; j < a.length; j++) view.setFloat32(at + 4 * j, a[j]!, true);
      at += a.byteLength;
    }
  }
  return out;
}

/**
 * Decodes what {@link encodeOptimizerState} wrote for `strategy`, expecting exactly the slots `slots` (in any order).
 * Throws STRATEGY_STATE_INVALID naming what is wrong.
 */
export function decodeOptimizerState(strategy: string, slots: readonly string[], bytes: Uint8Array): OptimizerState {
  const bad = (why: string, details: Record<string, unknown> = {}) =>
    new FedStreamError('STRATEGY_STATE_INVALID', `cannot restore the ${strategy} state stored with the latest version: ${why}`, { details: { strategy, ...details } });
  if (bytes.length < 4) throw bad(`${bytes.length} bytes is too short for a header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(0, true);
  if (4 + headerLength > bytes.length) throw bad(`the header claims ${headerLength} bytes, only ${bytes.length - 4} follow`);
  let header: StateHeader;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(4, 4 + headerLength))) as StateHeader;
  } catch (err) {
    throw bad(`its header is not JSON (${(err as Error).message}); it was written by another strategy or is damaged`);
  }
  if (header?.format !== FEDOPT_STATE_FORMAT) throw bad(`format ${JSON.stringify(header?.format)}, expected ${FEDOPT_STATE_FORMAT}`, { format: header?.format });
  if (header.strategy !== strategy) {
    throw bad(`it was written by strategy ${JSON.stringify(header.strategy)}; the manifest names ${strategy}. Run the pipeline with the strategy that wrote it, or start a new pipeline`, { stored: header.strategy });
  }
  const okTensors = Array.isArray(header.tensors) && header.tensors.every((t) => typeof t?.name === 'string' && Number.isInteger(t.length) && t.length >= 0);
  if (!okTensors || !Array.isArray(header.slots) || !Number.isInteger(header.steps) || header.steps < 0) throw bad('its header lacks steps, slots or tensors');
  const want = [...slots].sort().join(',');
  const list = (xs: readonly string[]) => (xs.length ? xs.join(', ') : 'none');
  if ([...header.slots].sort().join(',') !== want) throw bad(`it holds slots ${list(header.slots)}, expected ${list(slots)} (were the strategy's options changed?)`);
  const perSlot = header.tensors.reduce((a, t) => a + t.length, 0);
  const expected = 4 + headerLength + perSlot * header.slots.length * 4;
  if (bytes.length !== expected) throw bad(`${bytes.length} bytes, expected ${expected} for ${header.slots.length} slots of ${perSlot} parameters`);
  let at = 4 + headerLength;
  const out = new Map<string, Float32Array[]>();
  for (const slot of header.slots) {
    out.set(slot, header.tensors.map((t) => {
      const a = new Float32Array(t.length);
      if (LITTLE_ENDIAN) new Uint8Array(a.buffer).set(bytes.subarray(at, at + 4 * t.length));
      else for (let j = 0; j < t.length; j++) a[j] = view.getFloat32(at + 4 * j, true);
      at += 4 * t.length;
      // Values no step writes (NaN, a negative second moment v) would reach every later version's weights. ±∞ is
      // kept: a float32 moment overflows to it when limits.maxUpdateNorm lets huge updates in, and a restart must
      // continue as the uninterrupted run would.
      const j = slot === 'v' ? a.findIndex((x) => !(x >= 0)) : a.findIndex((x) => Number.isNaN(x));
      if (j >= 0) {
        throw bad(`slot ${slot} of tensor ${t.name} holds ${a[j]} at [${j}]${slot === 'v' ? ' (second moments are ≥ 0)' : ''}: no step writes that, the state is damaged`, { slot, tensor: t.name, index: j });
      }
      return a;
    }));
  }
  return { steps: header.steps, tensors: header.tensors.map((t) => ({ name: t.name, length: t.length })), slots: out };
}

/**
 * One tensor's server step: reads the base x (float32) and the fold's float64 sums (the mean of element j is
 * `sums[j] * inv`), updates the optimizer's arrays for this tensor in place (`state[slot]`, float32) and writes the
 * new weights to `out`. `round` is the round being finished (Flower's `server_round`).
 */
export interface TensorStep {
  x: Float32Array;
  sums: Float64Array;
  inv: number;
  out: Float32Array;
  state: Record<string, Float32Array>;
  round: number;
}

/**
 * The base of FedAvgM, FedAdagrad, FedAdam and FedYogi: FedAvg's round, the server step at `finish`, and the state
 * (see the file's comment). A subclass names its slots and implements {@link ServerOptimizer.stepTensor}.
 */
export abstract class ServerOptimizer implements Strategy {
  abstract readonly name: string;
  private readonly selection: FedAvg;
  private current: OptimizerState | undefined;

  /** `slots`: names of the per-element arrays the optimizer keeps (`m`, `v`, `momentum`); none for a stateless setting. */
  protected constructor(private readonly common: ServerOptimizerBase, private readonly slots: readonly string[]) {
    this.selection = new FedAvg(common);
  }

  /** FedAvg's: the same selection of nodes and the same round config. */
  configureRound(ctx: RoundContext): RoundPlan {
    return this.selection.configureRound(ctx);
  }

  begin(base: Weights, ctx: RoundContext): Aggregation {
    return new WeightedMean(base, {}, { maxWeightShare: this.common.maxWeightShare }, (sums, inv) => this.step(base, sums, inv, ctx.round));
  }

  /** The state after the last step; undefined before the first one (and always when the optimizer keeps no slots). */
  state(): Uint8Array | undefined {
    if (!this.current || this.slots.length === 0) return undefined;
    return encodeOptimizerState(this.name, this.current);
  }

  restore(bytes: Uint8Array): void {
    this.current = decodeOptimizerState(this.name, this.slots, bytes);
  }

  /** One tensor's step; see {@link TensorStep}. */
  protected abstract stepTensor(s: TensorStep): void;

  private step(base: Weights, sums: readonly Float64Array[], inv: number, round: number): Float32Array[] {
    const tensors = base.map((t) => ({ name: t.name, length: t.values.length }));
    let current = this.current;
    if (current) {
      const same = current.tensors.length === tensors.length && current.tensors.every((t, i) => t.name === tensors[i]!.name && t.length === tensors[i]!.length);
      if (!same) {
        throw new FedStreamError('STRATEGY_STATE_INVALID', `the ${this.name} state has tensors ${describe(current.tensors)}, the model has ${describe(tensors)}: it belongs to another model`, {
          details: { strategy: this.name },
        });
      }
    }
    // Updated in place (no second copy of the state): past the check above, the step is arithmetic that cannot throw.
    // Before the first step the arrays are zeros, as Flower's `np.zeros_like` for m_t, v_t.
    const next = new Map<string, Float32Array[]>();
    for (const slot of this.slots) next.set(slot, current?.slots.get(slot) ?? tensors.map((t) => new Float32Array(t.length)));
    const out = base.map((t, i) => {
      const o = new Float32Array(t.values.length);
      const state: Record<string, Float32Array> = {};
      for (const [slot, arrays] of next) state[slot] = arrays[i]!;
      this.stepTensor({ x: t.values, sums: sums[i]!, inv, out: o, state, round });
      return o;
    });
    current = { steps: (current?.steps ?? 0) + 1, tensors, slots: next };
    this.current = current;
    return out;
  }
}

function describe(tensors: ReadonlyArray<{ name: string; length: number }>): string {
  return `[${tensors.map((t) => `${t.name}:${t.length}`).join(', ')}]`;
}
