/**
 * What the aggregator knows after a restart, rebuilt from the log alone (DESIGN.md invariant 1): the update ids each
 * published version counts, the latest version (weights checked against their sha256, and the strategy state it
 * carries), and the last control record with the number of extensions its round had. Only records signed by the
 * aggregator's key count (DESIGN.md invariant 6): a version or control record written by anyone else, however well
 * formed (a FINISH, a version with a correct sha256), is refused and returned for the audit trail. Then `recoveryPlan` says what
 * to do with it: publish the initial version, resume an open round, start the round after the latest version, or
 * nothing (the pipeline has finished).
 */
import type { Logger } from 'pino';
import { unpackTensors, weightsSha256, type ModelVersionRecord, type RoundControlRecord } from '../codec/index.ts';
import type { Weights } from '../codec/index.ts';
import { FedStreamError } from '../common/index.ts';
import type { Manifest } from '../config/index.ts';
import type { PipelineTopics } from '../protocol/index.ts';
import { readLastControl, readModelVersions, type ParticipantRegistry } from '../protocol/index.ts';
import type { RefusedRecord } from './records.ts';
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
