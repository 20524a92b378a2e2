import type { Weights } from '../../codec/index.ts';
import { FedStreamError } from '../../common/index.ts';
import { RdpAccountant, SecureGaussian, type RdpAccountantState } from '../../ml/index.ts';
import type { AggregateResult, Aggregation, PrivacyGuarantee, Rejection, RoundContext, RoundPlan, Strategy } from '../strategy.ts';
import { ClippingAggregation } from './clipped.ts';
import { noisesMean } from './mean-noise.ts';

/**
 * What central DP-FedAvg's two clipping rules share (dp-fixed.ts, dp-adaptive.ts): a wrapper around any strategy,
 * with the semantics of Flower 1.42's DifferentialPrivacyServerSide{Fixed,Adaptive}Clipping
 * (flwr/server/strategy/dp_{fixed,adaptive}_clipping.py):
 *
 *   1. each accepted update's change from the round's base is clipped to the current clipping norm C
 *      (Δ' = Δ·min(1, C/‖Δ‖₂), over every tensor together), then folded into the inner strategy;
 *   2. the inner strategy aggregates as it would (FedAvg's weighted mean, a server optimizer's step, ...);
 *   3. Gaussian noise N(0, σ²) is added to every aggregated weight (a server optimizer's: to the mean of the updates,
 *      before its step, mean-noise.ts; Flower noises its output, whose sensitivity the step does not bound), with
 *      σ = z·C / min(m, n) (z: noise multiplier, m: `numSampledClients`, the configured sample size; n the updates
 *      received, when fewer, since one of n moves their mean by C/n, where Flower keeps C/m; C the norm this round
 *      clipped with);
 *      adaptive clipping then updates C for the next round (rule.afterRound). Flower 1.42's adaptive wrapper noises
 *      with the updated C instead, less noise than the sensitivity C/m needs whenever C shrinks; this follows the
 *      paper (Andrew et al. 2021, Algorithm 1: the noise uses the round's C, the update comes after).
 *
 * Noise comes from the CSPRNG (ml/privacy/gaussian.ts). The accountant (ml/privacy/rdp.ts) composes one release of
 * the sampled Gaussian mechanism per version, with q = m / population and the requested z (for adaptive clipping, z
 * is the combined noise of the weights and the clipped count, Andrew et al. Thm 1, so it is what is accounted).
 *
 * State (Strategy.state, stored with each ModelVersion and restored after a restart): the clipping norm, the
 * accountant's RDP vector and steps, then the inner strategy's own state:
 *
 *     uint32 LE header length | header (JSON: format, clipping, clippingNorm, accountant{rdp, steps}, innerBytes)
 *     | inner state bytes (innerBytes of them; 0 when the inner strategy has none)
 */
export const DP_STATE_FORMAT = 'fedstream.dp/1';

/** The central-DP settings a wrapper is built with (the manifest's `privacy` section, resolved). */
export interface CentralDpSettings {
  noiseMultiplier: number;
  clippingNorm: number;
  numSampledClients: number;
  /** q = numSampledClients / population, in (0, 1]. */
  samplingRate: number;
  /** δ at which ε is reported (the budget's, else 1e-5). */
  delta: number;
  /** The ε the pipeline may not exceed; undefined: no budget. */
  epsilonBudget?: number;
}

/** What differs between fixed and adaptive clipping. */
export interface ClippingRule {
  readonly kind: 'fixed' | 'adaptive';
  /** z actually used for the weights' noise (adaptive: less than the requested z, the rest goes to the count). */
  readonly weightsNoiseMultiplier: number;
  /**
   * Called at `finish`, after clipping every update with `clippingNorm`: returns the clipping norm for the next round
   * (fixed: unchanged). The noise of this round uses `clippingNorm`, the one the updates were clipped with.
   */
  afterRound(clippingNorm: number, unclipped: number, received: number, rng: SecureGaussian): number;
}

interface DpHeader {
  format: string;
  clipping: string;
  clippingNorm: number;
  accountant: RdpAccountantState;
  innerBytes: number;
}

export class CentralDp implements Strategy {
  readonly name: string;
  private clippingNorm: number;
  /** Adaptive clipping's update left (0, ∞) (η_C too large): the norm it gave and the one before; no round starts. */
  private runaway?: { from: number; to: number };
  private accountant = new RdpAccountant();
  private readonly rng = new SecureGaussian();

  constructor(private readonly inner: Strategy, private readonly s: CentralDpSettings, private readonly rule: ClippingRule) {
    if (!(s.clippingNorm > 0)) throw new FedStreamError('INTERNAL', `clipping norm ${s.clippingNorm} is not positive`);
    this.name = `${inner.name}+dp-${rule.kind}`;
    this.clippingNorm = s.clippingNorm;
  }

  /** The clipping norm the next round clips with. */
  get currentClippingNorm(): number {
    return this.clippingNorm;
  }

  configureRound(ctx: RoundContext): RoundPlan {
    return this.inner.configureRound(ctx);
  }

  /**
   * Refuses the round when the accountant does not cover every version before it (PRIVACY_HISTORY_INCOMPLETE: each
   * version after the initial one is one release, so a round from version V needs V releases composed; fewer means
   * versions were published without central DP, before `privacy.central` was added to the running pipeline, and any
   * ε computed from here would leave them out), or when its release would take ε above the budget
   * (PRIVACY_BUDGET_EXHAUSTED, with ε so far, ε after the round, the budget and δ in its details), or when adaptive
   * clipping's last update took the clipping norm to 0 or ∞ (PRIVACY_CONFIG_INVALID naming privacy.central.clipNormLr).
   * Undefined when the round may start.
   */
  admitRound(ctx: RoundContext): FedStreamError | undefined {
    if (this.accountant.steps < ctx.baseVersion) {
      return new FedStreamError('PRIVACY_HISTORY_INCOMPLETE',
        `round ${ctx.round} would start from version ${ctx.baseVersion}, but the central-DP accountant has composed ${this.accountant.steps} releases: versions ${this.accountant.steps + 1}..${ctx.baseVersion} were published without central DP (privacy.central added to a running pipeline, or their DP state is gone), so no ε this pipeline reports could cover them; start a new pipeline (another name) with privacy.central from its first round`,
        { details: { round: ctx.round, baseVersion: ctx.baseVersion, steps: this.accountant.steps } });
    }
    if (this.runaway) {
      const { from, to } = this.runaway;
      return new FedStreamError('PRIVACY_CONFIG_INVALID',
        `round ${ctx.round}: adaptive clipping's update took the clipping norm from ${from} to ${to}, outside (0, ∞): no update could be clipped to it and noised in proportion; privacy.central.clipNormLr (η_C) is too large for these rounds (the paper's is 0.2)`,
        { details: { round: ctx.round, path: 'privacy.central.clipNormLr', clippingNorm: from, nextClippingNorm: to } });
    }
    const budget = this.s.epsilonBudget;
    if (budget === undefined) return undefined;
    const next = this.accountant.epsilonAfter(this.release(), this.s.delta);
    if (next <= budget) return undefined;
    const now = this.accountant.epsilon(this.s.delta);
    return new FedStreamError('PRIVACY_BUDGET_EXHAUSTED',
      `round ${ctx.round} would take ε from ${now.toFixed(4)} to ${next.toFixed(4)} at δ = ${this.s.delta}, above the budget privacy.budget.epsilon = ${budget}; the pipeline stops after version ${ctx.baseVersion}`,
      { details: { round: ctx.round, epsilon: now, epsilonAfter: next, budget, delta: this.s.delta, steps: this.accountant.steps } });
  }

  begin(base: Weights, ctx: RoundContext): Aggregation {
    const inner = this.inner.begin(base, ctx);
    // A server optimizer takes the noise on its mean, before its step (mean-noise.ts); the others on their result.
    const clippedWith = this.clippingNorm;
    let noisedBefore = false;
    const agg = new DpAggregation(inner, base.map((t) => t.values), clippedWith, (r, unclipped, received) => this.finishRound(r, unclipped, received, noisedBefore));
    noisedBefore = noisesMean(inner) && inner.noiseMeanBeforeStep(() => this.noiseStd(clippedWith, agg.folded), this.rng);
    return agg;
  }

  /**
   * σ = z_weights·C / min(m, n) for n updates clipped to C: Flower's z·C/m when the round brings m or more, and more
   * noise when it brings fewer, since one of n < m updates moves their mean by up to C/n, not C/m: the accountant's
   * z (relative to that sensitivity) then holds for a short round too, and so does the budget checked before it.
   */
  private noiseStd(clippingNorm: number, received: number): number {
    return (this.rule.weightsNoiseMultiplier * clippingNorm) / Math.max(1, Math.min(this.s.numSampledClients, received));
  }

  privacy(): PrivacyGuarantee {
    return {
      epsilon: this.accountant.epsilon(this.s.delta), delta: this.s.delta, noiseMultiplier: this.s.noiseMultiplier,
      samplingRate: this.s.samplingRate, steps: this.accountant.steps, clippingNorm: this.clippingNorm, mechanism: `central-${this.rule.kind}`,
    };
  }

  state(): Uint8Array {
    const innerState = this.inner.state?.() ?? new Uint8Array(0);
    const header: DpHeader = { format: DP_STATE_FORMAT, clipping: this.rule.kind, clippingNorm: this.clippingNorm, accountant: this.accountant.toJSON(), innerBytes: innerState.length };
    const text = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(4 + text.length + innerState.length);
    new DataView(out.buffer).setUint32(0, text.length, true);
    out.set(text, 4);
    out.set(innerState, 4 + text.length);
    return out;
  }

  restore(bytes: Uint8Array): void {
    const bad = (why: string) => new FedStreamError('STRATEGY_STATE_INVALID', `cannot restore the ${this.name} state stored with the latest version: ${why}`, { details: { strategy: this.name } });
    if (bytes.length < 4) throw bad(`${bytes.length} bytes is too short for a header`);
    const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
    if (4 + length > bytes.length) throw bad(`the header claims ${length} bytes, only ${bytes.length - 4} follow`);
    let h: DpHeader;
    try {
      h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(4, 4 + length))) as DpHeader;
    } catch (err) {
      throw bad(`its header is not JSON (${(err as Error).message}); it was written without central DP, by another strategy, or is damaged`);
    }
    if (h?.format !== DP_STATE_FORMAT) throw bad(`format ${JSON.stringify(h?.format)}, expected ${DP_STATE_FORMAT} (was privacy.central added to a running pipeline?)`);
    if (h.clipping !== this.rule.kind) throw bad(`it was written with ${h.clipping} clipping; the manifest asks for ${this.rule.kind}`);
    if (!(h.clippingNorm > 0) || !Number.isInteger(h.innerBytes) || 4 + length + h.innerBytes !== bytes.length) throw bad('its header has no valid clipping norm or inner state length');
    if (typeof h.accountant !== 'object' || h.accountant === null) throw bad('its header has no accountant (the RDP of the versions released so far)');
    let accountant: RdpAccountant;
    try {
      accountant = new RdpAccountant(h.accountant);
    } catch (err) {
      throw bad((err as Error).message);
    }
    const innerState = bytes.subarray(4 + length);
    if (innerState.length > 0) {
      if (!this.inner.restore) throw bad(`it holds ${innerState.length} bytes of ${this.inner.name} state, which keeps none`);
      this.inner.restore(innerState);
    }
    // Adaptive clipping continues from the norm it had reached; fixed clipping's norm is the manifest's, so a changed
    // privacy.central.clippingNorm takes effect (the noise follows C, so each release keeps its z and its ε).
    this.clippingNorm = this.rule.kind === 'adaptive' ? h.clippingNorm : this.s.clippingNorm;
    this.accountant = accountant;
  }

  private release() {
    return { samplingRate: this.s.samplingRate, noiseMultiplier: this.s.noiseMultiplier };
  }

  /** `finish`'s DP part: the clipping norm's update, the noise, the accountant's step; metrics say what was done. */
  private finishRound(r: AggregateResult, unclipped: number, received: number, noisedBefore: boolean): AggregateResult {
    const clippedWith = this.clippingNorm;
    const next = this.rule.afterRound(clippedWith, unclipped, received, this.rng);
    // The noise is scaled to the norm the updates were clipped with (their sensitivity), not the updated one: noise
    // z·C_{t+1}/m would fall short of z·C_t/m whenever C shrinks, and ε would understate the release.
    const std = this.noiseStd(clippedWith, received);
    if (!noisedBefore) this.rng.addNoise(r.weights.map((t) => t.values), std);
    // A norm of 0 (exp underflow) would zero every update and the noise; ∞ (overflow) would make the noise infinite
    // and the state unwritable: the round's release stands (noised with clippedWith), the next is refused.
    if (next > 0 && Number.isFinite(next)) this.clippingNorm = next;
    else this.runaway = { from: clippedWith, to: next };
    this.accountant.step(this.release());
    const epsilon = this.accountant.epsilon(this.s.delta);
    return { ...r, metrics: { ...r.metrics, dp_clipped: received - unclipped, dp_clipping_norm: clippedWith, dp_noise_std: std, dp_epsilon: epsilon, dp_delta: this.s.delta } };
  }
}

/** Clips each update to the round's clipping norm before the inner aggregation sees it (clipped.ts); at `finish`, the DP part. */
class DpAggregation extends ClippingAggregation {
  constructor(inner: Aggregation, base: Float32Array[], clippingNorm: number, private readonly done: (r: AggregateResult, unclipped: number, received: number) => AggregateResult) {
    super(inner, base, clippingNorm);
  }

  /** Updates folded so far (the noise's divisor when fewer than numSampledClients). */
  get folded(): number {
    return this.received;
  }

  finish(rejections: Rejection[]): AggregateResult {
    return this.done(this.inner.finish(rejections), this.received - this.clipped, this.received);
  }
}
