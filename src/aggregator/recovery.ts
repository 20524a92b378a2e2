/**
 * What the aggregator knows after a restart, rebuilt from the log alone (DESIGN.md invariant 1): the update ids each
 * published version counts, the latest version (weights checked against their sha256, and the strategy state it
 * carries), and the last control record with the number of extensions its round had. Only records signed by the
 * aggregator's key count (DESIGN.md invariant 6): a version or control record written by anyone else, however well
 * formed (a FINISH, a version with a correct sha256), is refused and returned for the audit trail. Then `recoveryPlan` says what
 * to do with it: publish the initial version, resume an open round, start the round after the latest version, or
 * nothing (the pipeline has finished); `recoverRun` does it.
 */
import type { Logger } from 'pino';
import { unpackTensors, weightsSha256, type ModelVersionRecord, type RoundControlRecord } from '../codec/index.ts';
import type { Weights } from '../codec/index.ts';
import { FedStreamError } from '../common/index.ts';
import type { Manifest } from '../config/index.ts';
import type { PipelineTopics } from '../protocol/index.ts';
import { readLastControl, readModelVersions, type ParticipantRegistry } from '../protocol/index.ts';
import { refusedOut, type RefusedRecord } from './records.ts';
import type { RoundPublisher } from './publication.ts';
import type { AggregatorRun } from './run.ts';
import type { Transport } from '../transport/index.ts';

/** The latest published version, as recovery needs it. */
export interface RecoveredVersion {
  version: number;
  round: number;
  weights: Weights;
  /** The strategy's state stored with the version (ModelVersion.strategyState), if any. */
  strategyState?: Uint8Array;
}

export interface RecoveredLog {
  /** updateId → the version that counts it. */
  counted: Map<string, number>;
  latest?: RecoveredVersion;
  /** The last control record of this pipeline, and how many EXTENDs its round had. */
  control?: RoundControlRecord;
  extensions: number;
  /** Records that are not the aggregator's (unsigned, forged): not acted on, to be audited and dead-lettered. */
  refused: RefusedRecord[];
}

/**
 * Reads the models and control topics to their ends. Unreadable records are logged and skipped; records that
 * `registry` does not attribute to the aggregator are logged, skipped and returned in `refused`.
 */
export async function readPipelineLog(t: Transport, m: Manifest, topics: PipelineTopics, log: Logger, registry: ParticipantRegistry): Promise<RecoveredLog> {
  const counted = new Map<string, number>();
  const refused: RefusedRecord[] = [];
  const refuse = (r: RefusedRecord) => {
    log.warn({ audit: 'MESSAGE_DEAD_LETTERED', code: r.code, source: `${r.topic}/${r.partition}/${r.offset}` }, `recovery refused a record: ${r.reason}`);
    refused.push(r);
  };
  let latest: ModelVersionRecord | undefined;
  await readModelVersions(t, m, topics.models, {
    logger: log,
    registry,
    onRefused: (r) => refuse({ topic: r.payload.topic, partition: r.payload.partition, offset: r.payload.firstOffset, key: r.message.key, bytes: r.payload.bytes, code: r.code, reason: r.reason }),
    onVersion: (v) => {
      for (const c of v.contributors) counted.set(c.updateId, v.version);
      if (!latest || v.version > latest.version) latest = v;
    },
  });
  const { control, extensions } = await readLastControl(t, m, topics.control, {
    logger: log,
    registry,
    onRefused: (r) => refuse({ topic: r.payload.topic, partition: r.payload.partition, offset: r.payload.firstOffset, key: r.message.key, bytes: r.payload.bytes, code: r.code, reason: r.reason }),
  });
  if (!latest) return { counted, control, extensions, refused };
  const weights = unpackTensors(latest.tensors);
  const sha = weightsSha256(weights);
  if (sha !== latest.weightsSha256) {
    throw new FedStreamError('CODEC_CHECKSUM_MISMATCH', `model version ${latest.version} in ${topics.models} has weights sha256 ${sha}, its record says ${latest.weightsSha256}`);
  }
  const state = latest.strategyState;
  return {
    counted,
    latest: { version: latest.version, round: Number(latest.round), weights, ...(state ? { strategyState: new Uint8Array(state) } : {}) },
    control,
    extensions,
    refused,
  };
}

/** What to do after reading the log. */
export type RecoveryPlan =
  /** Nothing published yet: publish version 0 and start round 1. */
  | { type: 'initial' }
  /** The last control record is FINISH, after round `round`: done, unless the manifest now asks for more rounds. */
  | { type: 'finished'; round: number }
  /** A version without a round after it: start the round after `round`. */
  | { type: 'start-after'; round: number }
  /** Reopen the round of the last control record, with its extensions so far. */
  | { type: 'resume'; control: RoundControlRecord; extensions: number };

/** The plan for a recovered log. Pure. */
export function recoveryPlan(r: RecoveredLog): RecoveryPlan {
  if (!r.latest) return { type: 'initial' };
  if (!r.control) return { type: 'start-after', round: r.latest.round };
  if (r.control.kind === 'FINISH') return { type: 'finished', round: Number(r.control.round) };
  return { type: 'resume', control: r.control, extensions: r.extensions };
}

/**
 * The aggregator's restart (or first start): reads the log into `s` (the counted update ids, the latest version and
 * its weights, the strategy's state stored with it), audits and dead-letters the refused records in one transaction,
 * then carries out the plan: publish the initial version, continue a finished pipeline whose rounds.count was
 * raised, start the round after the latest version, or reopen the open round (`openRound`). Leaves `s.finished` set
 * when there is nothing more to run.
 */
export async function recoverRun(s: AggregatorRun, publisher: RoundPublisher, openRound: (c: RoundControlRecord, extensions: number) => void): Promise<void> {
  const got = await readPipelineLog(s.t, s.m, s.topics, s.log, s.registry);
  for (const [id, v] of got.counted) s.counted.set(id, v);
  if (got.refused.length > 0) {
    // Nothing else writes these: records in control or models that the aggregator did not sign (a forged FINISH, a
    // forged version) are audited and dead-lettered here, each time recovery meets them (same event id each time).
    await publisher.transact(`audit ${got.refused.length} refused records`, got.refused.flatMap((r) => refusedOut(s.scope, r, Date.now())), false);
  }
  if (got.latest) {
    s.version = got.latest.version;
    s.weights = got.latest.weights;
    s.events.emit({ type: 'version.recovered', version: s.version });
    if (got.latest.strategyState) {
      if (s.opts.strategy.restore) s.opts.strategy.restore(got.latest.strategyState);
      else s.log.warn({ version: s.version, strategy: s.opts.strategy.name }, 'the latest version carries a strategy state that this strategy cannot restore; ignored');
    }
  }
  const plan = recoveryPlan(got);
  switch (plan.type) {
    case 'initial':
      s.weights = await s.opts.initialWeights();
      s.version = -1;
      await publisher.publishInitial();
      return;
    case 'finished':
      s.decidedRound = plan.round;
      if (plan.round < s.m.rounds.count) {
        await publisher.continueAfter(plan.round);
        return;
      }
      s.finished = true;
      s.log.info({ version: s.version, round: plan.round, roundsCount: s.m.rounds.count },
        `the pipeline finished after round ${plan.round}; rounds.count ${s.m.rounds.count} asks for no more (raise it to continue)`);
      return;
    case 'start-after':
      s.decidedRound = plan.round;
      // A version without a round to follow it: start the next one.
      await publisher.startAfter(plan.round);
      return;
    case 'resume':
      s.decidedRound = Number(plan.control.round) - 1;
      openRound(plan.control, plan.extensions);
      s.log.info({ version: s.version, round: plan.control.round, kind: plan.control.kind, extensions: plan.extensions }, 'recovered state from the log');
  }
}
