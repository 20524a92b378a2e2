/**
 * Byzantine nodes for experiments and tests (`fedstream experiment robustness`): a node whose update is corrupted on
 * the node, before the runtime packs and signs it, so that it reaches the aggregator as any update does — signed by
 * the node's key, through validation (norm bound, non-finite values, shapes) and into the strategy. Never used by
 * `fedstream node`; nothing in a manifest selects it.
 *
 * The attacks, with w_t the round's base, w the honestly trained weights and Δ = w − w_t:
 * - `sign-flip` (×10): w' = w_t − 10·Δ (the attack of issue 14: a reversed, boosted step; Blanchard et al. 2017 §5,
 *   "omniscient" direction reversal);
 * - `scaling` (×100): w' = w_t + 100·Δ (a boosted honest step: model replacement, Bagdasaryan et al., AISTATS 2020);
 * - `noise`: w' = w + N(0, σ²) per parameter, σ = 1 weight unit (Blanchard et al. 2017 §5, "Gaussian Byzantine");
 * - `label-flip`: the node trains on its data with each label y replaced by 9 − y (Fang et al., USENIX Security
 *   2020 §5; Tolpegin et al., ESORICS 2020), an honest computation on poisoned data: done by the trainer
 *   ({@link LabelFlipTrainer}), not here.
 */
import type { Weights } from '../codec/index.ts';
import { deriveSeed } from '../ml/index.ts';
import type { LocalTrainer } from './trainer.ts';

export const ATTACKS = ['sign-flip', 'scaling', 'noise', 'label-flip'] as const;
export type Attack = (typeof ATTACKS)[number];

/** σ of the `noise` attack, in weight units. */
export const NOISE_SIGMA = 1;

/** A trainer that can train on flipped labels (the experiment's worker pool). */
export interface LabelFlipTrainer {
  trainerFor(nodeId: string, o?: { flipLabels?: boolean }): LocalTrainer;
}

/** Corrupts `w` (trained from `base`) by `attack` (not `label-flip`); `seed` seeds the noise. New arrays. */
export function corrupt(attack: Exclude<Attack, 'label-flip'>, base: Weights, w: Weights, seed: number): Weights {
  const rand = gaussian(seed);
  return w.map((t, i) => {
    const b = base[i]!.values;
    const v = t.values;
    const out = new Float32Array(v.length);
    for (let j = 0; j < v.length; j++) {
      const d = v[j]! - b[j]!;
      out[j] = attack === 'sign-flip' ? b[j]! - 10 * d : attack === 'scaling' ? b[j]! + 100 * d : v[j]! + NOISE_SIGMA * rand();
    }
    return { name: t.name, shape: [...t.shape], values: out };
  });
}

/** A node's trainer that behaves as `attack` says: trains honestly (or on flipped labels), then corrupts the result. */
export function byzantineTrainer(pool: LabelFlipTrainer, nodeId: string, attack: Attack): LocalTrainer {
  if (attack === 'label-flip') return pool.trainerFor(nodeId, { flipLabels: true });
  const honest = pool.trainerFor(nodeId);
  return {
    async train(input) {
      const r = await honest.train(input);
      return { ...r, weights: corrupt(attack, input.weights, r.weights, deriveSeed(input.seed, 'byzantine', nodeId)) };
    },
  };
}

/** Standard normal draws (Box–Muller) from a seeded 32-bit generator (mulberry32): the same seed, the same noise. */
function gaussian(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => {
    const u = 1 - uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
}
