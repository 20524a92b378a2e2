import type { Weights } from '../codec/index.ts';
import type { FedStreamError } from '../common/index.ts';
import type { RoundConfig } from '../protocol/index.ts';
import type { LogPosition, UpdateLogReader } from './log-reread.ts';

/** An update that passed validation, in memory. */
export interface AcceptedUpdate {
  updateId: string;
  nodeId: string;
  round: number;
  numExamples: number;
  weights: Weights;
  metrics: Record<string, number>;
  /** Where the update lies in the updates topic (its first chunk), when it came from there: a strategy may read it again. */
  source?: LogPosition;
  /**
   * Set by wrappers that folded w' = w_t + (w − w_t) · s instead of the update w as logged (norm clipping: Clipped,
   * central DP), one s per wrapper, in the order they were applied (each result rounded to float32); whoever reads
   * the update again from the log applies them the same way (kernels/robust.ts `scaleFromBase`). Absent: none.
   */
  deltaScales?: number[];
}

/** A rejected update: partial failure is data (as Flower's `failures`). */
export interface Rejection {
  updateId: string | null;
  nodeId: string | null;
  round: number | null;
  /** Machine-readable reason: `stale_round`, `wrong_base_version`, `shape_mismatch`, `non_finite`, `norm_bound`, `duplicate`, `undecodable`, ... */
  code: string;
  /** Human-readable reason naming what was wrong. */
  reason: string;
}

export interface RoundContext {
  round: number;
  baseVersion: number;
  /** Nodes known to the pipeline (from the manifest or from heartbeats); empty when unknown. */
  knownNodes: string[];
  /** Reads accepted updates again from the updates topic (a robust strategy beyond its memory budget); absent in tests without a log. */
  log?: UpdateLogReader;
}

export interface RoundPlan {
  /** Nodes asked to train this round; empty means every node. */
  selectedNodes: string[];
  /**
   * Training configuration sent to the nodes, typed (protocol/round-config.ts: epochs, batchSize, learningRate,
   * optimizer, and FedProx's proximalMu); the aggregator puts it on the wire with `encodeRoundConfig`.
   */
  config: RoundConfig;
}

export interface AggregateResult {
  weights: Weights;
  /** Aggregated metrics, e.g. the example-weighted mean of the nodes' training loss and accuracy. */
  metrics: Record<string, number>;
  /** Weight of each contribution in the result, by updateId (for lineage). */
  contributionWeights: Map<string, number>;
  /**
   * Updates whose weight was clamped to `limits.maxWeightShare`, with the share they would have had (0..1); their
   * clamped weight is in `contributionWeights`. Absent when none was.
   */
  weightCapped?: Map<string, number>;
}

/**
 * The running state of one round's aggregation. `fold` is called once per accepted update, in log
 * order; implementations keep memory O(parameters), never O(updates x parameters).
 */
export interface Aggregation {
  fold(update: AcceptedUpdate): void;
  /**
   * Optional: arrays, one per tensor of the model, to decode the next update into. Passing them back in
   * `fold` lets the aggregation use them where they lie (no copy); an update that is not folded gives them back
   * with `release`. Undefined when there is nothing to offer; the caller then decodes into new arrays.
   */
  reserve?(): Float32Array[] | undefined;
  release?(values: Float32Array[] | undefined): void;
  /**
   * Optional: do now whatever work `fold` deferred (FedAvg folds a few updates per pass). The aggregator calls it
   * when it has caught up with the updates topic, so that deferred work is done while it waits, not when the
   * round closes.
   */
  flush?(): void;
  /**
   * Optional: the aggregation will not be used again (its round was abandoned): give back what it holds, for the
   * next round's. `finish` does the same on its own.
   */
  dispose?(): void;
  /**
   * Optional: asynchronous work `finish` needs first; the aggregator awaits it just before `finish`. A robust
   * aggregation beyond its memory budget re-reads the round's updates from the log here (strategies/spill.ts).
   * Wrappers forward it.
   */
  settle?(): Promise<void>;
  /** Number of updates folded so far. */
  readonly count: number;
  /** Produces the new weights, given the rejections too (a strategy may refuse to aggregate). */
  finish(rejections: Rejection[]): AggregateResult;
}

/**
 * One interface per extension point, after Flower's `Strategy`: configure a round, then aggregate
 * its accepted updates. The round loop lives once, in the aggregator (its policy: rounds.ts).
 *
 * Server-side state that must outlive a round (FedAdam's moments, a privacy accountant; Flower's `fedopt.py` keeps
 * `m_t`, `v_t` on the strategy) is the strategy's own: the aggregator stores `state()` in each ModelVersion it
 * publishes (the record's `strategyState`, opaque bytes) and, when it restarts, calls `restore` with the bytes of
 * the latest version before it begins a round. So change the state only in `Aggregation.finish` (a version follows
 * it), never in `configureRound` or `begin`: what an abandoned round did would otherwise survive in memory but not
 * in the log. A stateless strategy (FedAvg) has neither method.
 */
export interface Strategy {
  readonly name: string;
  configureRound(ctx: RoundContext): RoundPlan;
  begin(base: Weights, ctx: RoundContext): Aggregation;
  /** Optional: the state after the last `finish`, as bytes in the strategy's own encoding (JSON text is fine); undefined when there is none. */
  state?(): Uint8Array | undefined;
  /** Optional: takes back what `state()` returned (from the latest ModelVersion); throws FedStreamError when the bytes are not its own. */
  restore?(state: Uint8Array): void;
  /**
   * Optional (central DP, strategies/dp-central.ts): whether the next round may start. A FedStreamError
   * (PRIVACY_BUDGET_EXHAUSTED) refuses it: the aggregator audits the refusal, finishes the pipeline and stops with it.
   */
  admitRound?(ctx: RoundContext): FedStreamError | undefined;
  /** Optional (central DP): the guarantee after the last `finish`, stored in the ModelVersion's `privacy` field. */
  privacy?(): PrivacyGuarantee | undefined;
}

/** The (ε, δ)-DP guarantee of the versions published so far (ModelVersion's `privacy`, docs/strategies.md). */
export interface PrivacyGuarantee {
  /** ε (nats) of all versions so far together, at δ; node-level. */
  epsilon: number;
  delta: number;
  /** z: noise std over the clipping norm. */
  noiseMultiplier: number;
  /** q: nodes sampled per round over the population. */
  samplingRate: number;
  /** Noised releases (versions) composed. */
  steps: number;
  /** The clipping norm the next round clips with (adaptive clipping moves it). */
  clippingNorm: number;
  /** `central-fixed` or `central-adaptive`. */
  mechanism: string;
}
