/**
 * The in-memory state of the open round: what the policy (rounds.ts) and validation (validate.ts) are asked about,
 * the strategy's running aggregation, and the records that go out with the round's deciding transaction.
 */
import type { RoundControlRecord } from '../codec/index.ts';
import type { Manifest } from '../config/index.ts';
import type { ProducerRecord } from '../transport/index.ts';
import type { ServiceHealth } from '../common/index.ts';
import { stateOf, type OpenRoundState } from './rounds.ts';
import type { Aggregation, Rejection } from './strategy.ts';
import type { RoundState } from './validate.ts';

export interface OpenRound {
  round: number;
  baseVersion: number;
  /** ms since the epoch. */
  deadline: number;
  minUpdates: number;
  targetUpdates: number;
  selectedNodes: Set<string>;
  extensions: number;
  /** ms since the epoch. */
  startedAt: number;
  aggregation: Aggregation;
  acceptedIds: Set<string>;
  contributors: Map<string, { nodeId: string; numExamples: number }>;
  contributedNodes: Set<string>;
  rejections: Rejection[];
  /** Records published with the round's deciding transaction (audit, dead-letter). */
  pending: ProducerRecord[];
  /** Raw bytes of rejected messages in `pending`'s dead-letter records, against `limits.maxDeadLetterBytesPerRound`. */
  deadLetterBytes: number;
  /** Rejections audited without their bytes because that budget was spent. */
  deadLetterOmitted: number;
  /** Rejections beyond `limits.maxRejectionsPerRound`, counted by code instead of audited one by one. */
  notItemized: Map<string, number>;
}

/** The round a START (or, on recovery, the last control record) opens, with `extensions` so far, at `now`. */
export function openRound(c: RoundControlRecord, extensions: number, aggregation: Aggregation, now: number): OpenRound {
  return {
    round: Number(c.round),
    baseVersion: Number(c.baseVersion),
    deadline: Number(c.deadline),
    minUpdates: c.minUpdates,
    targetUpdates: c.targetUpdates,
    selectedNodes: new Set(c.selectedNodes),
    extensions,
    startedAt: now,
    aggregation,
    acceptedIds: new Set(),
    contributors: new Map(),
    contributedNodes: new Set(),
    rejections: [],
    pending: [],
    deadLetterBytes: 0,
    deadLetterOmitted: 0,
    notItemized: new Map(),
  };
}

/** Every rejection of the round: those audited one by one and those only counted. */
export function rejectedCount(r: OpenRound): number {
  let n = r.rejections.length;
  for (const c of r.notItemized.values()) n += c;
  return n;
}

/** Audit details of a round's decision about what it did not itemise (empty when nothing was left out). */
export function boundsDetails(r: OpenRound): Record<string, string> {
  const out: Record<string, string> = {};
  if (r.deadLetterOmitted) out.deadLetterOmitted = String(r.deadLetterOmitted);
  if (r.notItemized.size) out.rejectionsNotItemized = [...r.notItemized].map(([code, n]) => `${code}=${n}`).join(',');
  return out;
}

/** What the round policy sees of the round. */
export function policyState(r: OpenRound, catchingUp: boolean): OpenRoundState {
  return { round: r.round, accepted: r.acceptedIds.size, minUpdates: r.minUpdates, targetUpdates: r.targetUpdates, extensions: r.extensions, deadline: r.deadline, catchingUp };
}

/** What validation sees of the round; `counted`: update ids already counted by published versions. */
export function validationState(m: Manifest, r: OpenRound, counted: ReadonlyMap<string, number>): RoundState {
  return {
    tenant: m.tenant,
    pipeline: m.name,
    round: r.round,
    baseVersion: r.baseVersion,
    open: true,
    selectedNodes: r.selectedNodes,
    acceptedIds: r.acceptedIds,
    contributedNodes: r.contributedNodes,
    countedIds: counted,
  };
}

/** The aggregator service's phase. */
export type Phase = 'idle' | 'starting' | 'running' | 'finished' | 'stopped' | 'failed';

/**
 * The aggregator's health as a value: its phase (`recovering` while a running aggregator re-reads the log after a
 * restart), one line of detail, and figures (version; round, accepted, extensions, deadline of the open round).
 */
export function healthOf(phase: Phase, version: number, r: OpenRound | undefined, catchingUp: boolean, failure?: unknown): ServiceHealth {
  const figures: Record<string, number | string> = { version };
  if (r) Object.assign(figures, { round: r.round, accepted: r.acceptedIds.size, extensions: r.extensions, deadline: r.deadline });
  const state = phase === 'running' && r && stateOf(policyState(r, catchingUp)) === 'RECOVERING' ? 'recovering' : phase;
  const detail = phase === 'failed'
    ? `stopped on an error: ${failure instanceof Error ? failure.message : String(failure)}`
    : r ? `round ${r.round}: ${r.acceptedIds.size} of ${r.targetUpdates} updates, version ${version}` : `version ${version}`;
  return { healthy: phase === 'starting' || phase === 'running' || phase === 'finished', state, detail, figures };
}
