import type { Weights } from '../codec/index.ts';
import type { Limits } from '../config/index.ts';
import type { Rejection } from './strategy.ts';

/** What validation needs to know of an update, after decoding (weights unpacked). */
export interface CandidateUpdate {
  updateId: string;
  nodeId: string;
  tenant: string;
  pipeline: string;
  round: number;
  baseVersion: number;
  numExamples: number;
  weights: Weights;
}

export interface RoundState {
  tenant: string;
  pipeline: string;
  round: number;
  baseVersion: number;
  /** Is the round open for updates? */
  open: boolean;
  selectedNodes: ReadonlySet<string>;
  /** updateIds accepted in this round. */
  acceptedIds: ReadonlySet<string>;
  /** Nodes that already contributed this round. */
  contributedNodes: ReadonlySet<string>;
  /** updateIds already counted in published versions (recent history), with the version that counted them. */
  countedIds: ReadonlyMap<string, number>;
}

export interface ValidationLimits {
  /** Largest allowed L2 distance between the update's weights and the base weights (`limits.maxUpdateNorm`). */
  maxUpdateNorm: number;
  /** Largest numExamples a single update may claim (`limits.maxExamplesPerUpdate`: guards the weighting against a lying node). */
  maxExamples: number;
}

/** The validation limits of a manifest's `limits` section. */
export function validationLimits(limits: Pick<Limits, 'maxUpdateNorm' | 'maxExamplesPerUpdate'>): ValidationLimits {
  return { maxUpdateNorm: limits.maxUpdateNorm, maxExamples: limits.maxExamplesPerUpdate };
}

/**
 * An update's metrics split into those that may be averaged and published (finite, |value| <= `maxAbs`, i.e.
 * `limits.maxMetricAbs`) and the names of those that may not, each as `name=value` for the audit. The update itself
 * is kept when otherwise valid: a node's absurd loss says nothing about its weights, which validation checks apart.
 */
export function saneMetrics(metrics: Readonly<Record<string, number>>, maxAbs: number): { kept: Record<string, number>; dropped: string[] } {
  const kept: Record<string, number> = {};
  const dropped: string[] = [];
  for (const [k, v] of Object.entries(metrics)) {
    if (Number.isFinite(v) && Math.abs(v) <= maxAbs) kept[k] = v;
    else dropped.push(`${k}=${v}`);
  }
  return { kept, dropped };
}

/**
 * Validates one update against the open round and the base weights. Returns null when the update is
 * acceptable, or the rejection with a reason a person can read. Checks run cheapest first.
 */
export function validateUpdate(u: CandidateUpdate, state: RoundState, base: Weights, limits: ValidationLimits): Rejection | null {
  const reject = (code: string, reason: string): Rejection => ({ updateId: u.updateId, nodeId: u.nodeId, round: u.round, code, reason });
  if (u.tenant !== state.tenant || u.pipeline !== state.pipeline) {
    return reject('wrong_pipeline', `update ${u.updateId} is for ${u.tenant}.${u.pipeline}, this is ${state.tenant}.${state.pipeline}`);
  }
  const counted = state.countedIds.get(u.updateId);
  if (counted !== undefined) return reject('duplicate', `update ${u.updateId} was already counted in version ${counted}`);
  if (state.acceptedIds.has(u.updateId)) return reject('duplicate', `update ${u.updateId} was already accepted in round ${state.round}`);
  if (u.round < state.round || (u.round === state.round && !state.open)) {
    return reject('stale_round', `update from node ${u.nodeId} is for round ${u.round}, which is closed (current round ${state.round})`);
  }
  if (u.round > state.round) return reject('future_round', `update from node ${u.nodeId} is for round ${u.round}, but round ${state.round} is the latest started`);
  if (u.baseVersion !== state.baseVersion) {
    return reject('wrong_base_version', `update from node ${u.nodeId} was trained from version ${u.baseVersion}, round ${state.round} starts from version ${state.baseVersion}`);
  }
  if (state.selectedNodes.size > 0 && !state.selectedNodes.has(u.nodeId)) {
    return reject('not_selected', `node ${u.nodeId} was not selected for round ${state.round}`);
  }
  if (state.contributedNodes.has(u.nodeId)) return reject('node_already_contributed', `node ${u.nodeId} already contributed to round ${state.round}`);
  if (!Number.isSafeInteger(u.numExamples) || u.numExamples <= 0 || u.numExamples > limits.maxExamples) {
    return reject('bad_num_examples', `numExamples ${u.numExamples} from node ${u.nodeId} is outside 1..${limits.maxExamples} (limits.maxExamplesPerUpdate)`);
  }
  if (u.weights.length !== base.length) {
    return reject('shape_mismatch', `update from node ${u.nodeId} has ${u.weights.length} tensors, the model has ${base.length}`);
  }
  let sq = 0;
  for (let t = 0; t < base.length; t++) {
    const b = base[t]!;
    const w = u.weights[t]!;
    if (w.name !== b.name || w.shape.length !== b.shape.length || w.shape.some((d, i) => d !== b.shape[i])) {
      return reject('shape_mismatch', `tensor ${t} of node ${u.nodeId}'s update is ${w.name} [${w.shape.join(',')}], the model expects ${b.name} [${b.shape.join(',')}]`);
    }
    const x = w.values;
    const y = b.values;
    const part = squaredDistance(x, y);
    if (!Number.isFinite(part)) {
      // Only then look for where: d = x[i] - y[i] is NaN or ±Infinity exactly when x[i] is not finite (the base is
      // finite by construction), and no finite float32 difference squared overflows a double.
      const i = x.findIndex((v) => !Number.isFinite(v));
      return reject('non_finite', `tensor ${w.name} of node ${u.nodeId}'s update holds ${x[i]} at index ${i}`);
    }
    sq += part;
  }
  const norm = Math.sqrt(sq);
  if (norm > limits.maxUpdateNorm) {
    return reject('norm_bound', `update from node ${u.nodeId} moves the weights by ${norm.toFixed(3)} (L2), above the bound ${limits.maxUpdateNorm}`);
  }
  return null;
}

/**
 * Σ (x[i] - y[i])², in float64; NaN or Infinity when some x[i] is. Four partial sums, so that the adds do not wait
 * on each other: 1.6× the single-sum loop with a finiteness test per value (0.24 vs 0.40 ms at 200k values).
 */
function squaredDistance(x: Float32Array, y: Float32Array): number {
  const n = x.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const d0 = x[i]! - y[i]!;
    const d1 = x[i + 1]! - y[i + 1]!;
    const d2 = x[i + 2]! - y[i + 2]!;
    const d3 = x[i + 3]! - y[i + 3]!;
    s0 += d0 * d0;
    s1 += d1 * d1;
    s2 += d2 * d2;
    s3 += d3 * d3;
  }
  for (; i < n; i++) {
    const d = x[i]! - y[i]!;
    s0 += d * d;
  }
  return s0 + s1 + (s2 + s3);
}
