/**
 * The synchronous round policy of DESIGN.md ("Round protocol", steps 3-4) as pure decisions on state: no I/O, no
 * timers, no clock (the time is an input). The I/O shell (service.ts) and the in-process experiments
 * (demo/experiment.ts) both ask it what to do, so the round loop's rules live once, here.
 *
 * States of one round, and the transitions between them (after kafkajs' eosManager/transactionStates.js):
 *
 * ```
 *                 validated ok ─▶ accept        accepted, count < target ─▶ wait
 *   ┌────────┐    validated bad ─▶ reject       accepted, count ≥ target ─▶ close('target reached') ─▶ CLOSED
 *   │  OPEN  │    deadline, now < deadline     ─▶ wait (until the deadline)
 *   └────────┘    deadline, catching up         ─▶ wait (retry shortly: RECOVERING)
 *        ▲        deadline, count ≥ minUpdates  ─▶ close('deadline with n of t updates') ─▶ CLOSED
 *        └─────── deadline, below quorum, extensions < max ─▶ extend (new deadline) ─▶ OPEN
 *                 deadline, below quorum, extensions = max ─▶ abandon ─▶ ABANDONED
 *
 *   CLOSED | ABANDONED ─▶ nextStep: round < count ─▶ START round+1 (OPEN)   round = count ─▶ FINISHED
 * ```
 *
 * RECOVERING is OPEN while the aggregator re-reads, after a restart, updates that no published version counts yet:
 * a deadline then must wait, or the round would close on fewer updates than the run that crashed had seen.
 */
import type { Manifest } from '../config/index.ts';
import type { Rejection } from './strategy.ts';

/** The named states of a round (see the diagram above). */
export const ROUND_STATES = ['OPEN', 'RECOVERING', 'CLOSED', 'ABANDONED', 'FINISHED'] as const;
export type RoundStateName = (typeof ROUND_STATES)[number];

/** The round protocol of a pipeline: the manifest's `rounds` section. Durations in milliseconds. */
export interface RoundPolicy {
  /** Rounds to run; after the last one the pipeline finishes. */
  count: number;
  /** A START's target: the round closes as soon as this many updates are accepted. */
  targetUpdates: number;
  /** A START's quorum at the deadline (never above `targetUpdates`). */
  minUpdates: number;
  /** How long a round (or an extension) waits, ms. */
  timeoutMs: number;
  /** Extensions of a round below quorum before it is abandoned. */
  maxExtensions: number;
  /** Size a START's target to the alive nodes (`roundTargets`). */
  targetAliveNodes: boolean;
}

/** The round policy of a manifest. */
export function roundPolicy(m: Pick<Manifest, 'rounds'>): RoundPolicy {
  const r = m.rounds;
  return { count: r.count, targetUpdates: r.targetUpdates, minUpdates: Math.min(r.minUpdates, r.targetUpdates), timeoutMs: r.timeoutMs, maxExtensions: r.maxExtensions, targetAliveNodes: r.targetAliveNodes };
}

/**
 * A START's target and quorum. With `targetAliveNodes` and a count of alive nodes, the target is
 * min(targetUpdates, alive), never below minUpdates: a round with 5 live nodes of a pipeline sized for 10 closes when
 * the 5 have answered instead of waiting for its deadline. Otherwise the manifest's. Pure.
 */
export function roundTargets(policy: RoundPolicy, alive?: number): { targetUpdates: number; minUpdates: number } {
  const base = { targetUpdates: policy.targetUpdates, minUpdates: policy.minUpdates };
  if (!policy.targetAliveNodes || alive === undefined) return base;
  return { targetUpdates: Math.max(policy.minUpdates, Math.min(policy.targetUpdates, alive)), minUpdates: policy.minUpdates };
}

/** What the policy needs to know of an open round. `minUpdates`/`targetUpdates` are the round's own (its START). */
export interface OpenRoundState {
  round: number;
  /** Updates accepted so far. */
  accepted: number;
  minUpdates: number;
  targetUpdates: number;
  /** Extensions so far. */
  extensions: number;
  /** ms since the epoch. */
  deadline: number;
  /** True while re-reading the log after a restart (state RECOVERING). */
  catchingUp: boolean;
}

export type RoundEvent =
  /** An update was checked (validate.ts); `rejection` when it failed. */
  | { type: 'validated'; rejection?: Rejection }
  /** An accepted update was folded; `accepted` in the state counts it. */
  | { type: 'accepted' }
  /** The round's timer fired at `now` (ms since the epoch). */
  | { type: 'deadline'; now: number };

export type RoundDecision =
  | { type: 'accept' }
  | { type: 'reject'; rejection: Rejection }
  /** Nothing to do; `until` (ms since the epoch) is when to ask again on a deadline. */
  | { type: 'wait'; until?: number }
  | { type: 'close'; why: string }
  /** Extend the round: a new deadline, the extension's number, and why (for the audit trail). */
  | { type: 'extend'; deadline: number; extensions: number; why: string }
  | { type: 'abandon'; why: string };

/** How long a deadline waits while the log is re-read after a restart, ms. */
export const CATCH_UP_POLL_MS = 50;

/** The state name of an open round. */
export function stateOf(s: OpenRoundState): RoundStateName {
  return s.catchingUp ? 'RECOVERING' : 'OPEN';
}

/** What to do about `event` in the open round `s`, under `policy`. Pure. */
export function decide(policy: RoundPolicy, s: OpenRoundState, event: RoundEvent): RoundDecision {
  switch (event.type) {
    case 'validated':
      return event.rejection ? { type: 'reject', rejection: event.rejection } : { type: 'accept' };
    case 'accepted':
      return s.accepted >= s.targetUpdates ? { type: 'close', why: 'target reached' } : { type: 'wait' };
    case 'deadline': {
      if (event.now < s.deadline) return { type: 'wait', until: s.deadline };
      if (s.catchingUp) return { type: 'wait', until: event.now + CATCH_UP_POLL_MS };
      if (s.accepted >= s.minUpdates) return { type: 'close', why: `deadline with ${s.accepted} of ${s.targetUpdates} updates` };
      if (s.extensions < policy.maxExtensions) {
        const extensions = s.extensions + 1;
        return {
          type: 'extend',
          extensions,
          deadline: event.now + policy.timeoutMs,
          why: `${s.accepted} of ${s.minUpdates} required updates at the deadline; extension ${extensions} of ${policy.maxExtensions}`,
        };
      }
      return { type: 'abandon', why: `${s.accepted} of ${s.minUpdates} required updates after ${s.extensions} extensions` };
    }
  }
}

/** What follows a decided round (0: the initial version): START the next one with its deadline, or FINISH. */
export type NextStep = { type: 'start'; round: number; deadline: number } | { type: 'finish' };

/** The step after `decidedRound`, decided at `now` (ms since the epoch). Pure. */
export function nextStep(policy: RoundPolicy, decidedRound: number, now: number): NextStep {
  const round = decidedRound + 1;
  return round > policy.count ? { type: 'finish' } : { type: 'start', round, deadline: now + policy.timeoutMs };
}
