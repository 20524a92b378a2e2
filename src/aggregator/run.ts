/**
 * What the aggregator's parts share (service.ts the lifecycle, intake.ts the updates, publication.ts the decisions'
 * transactions, recovery.ts the restart): the wiring fixed at construction and the state of the run, which changes
 * only under the aggregator's lock (one message, deadline or start step at a time).
 */
import type { Logger } from 'pino';
import type { Weights } from '../codec/index.ts';
import { noInstrumentation, type FedStreamError, type Instrumentation } from '../common/index.ts';
import type { Manifest } from '../config/index.ts';
import { topicPrefix } from '../config/index.ts';
import { HeartbeatFollower, checkOwnKey, participantRegistry, pipelineTopics, type ParticipantRegistry, type PipelineTopics } from '../protocol/index.ts';
import type { Producer, Transport } from '../transport/index.ts';
import type { RecordScope } from './records.ts';
import { roundPolicy, type RoundPolicy } from './rounds.ts';
import type { ProducerSlot } from './transaction.ts';
import type { AggregatorOptions } from './options.ts';
import type { OpenRound } from './open-round.ts';
import { UpdatesLog } from './updates-log.ts';
import { updatesLogReader, type UpdateLogReader } from './log-reread.ts';

export interface AggregatorRun {
  readonly opts: AggregatorOptions;
  readonly m: Manifest;
  readonly t: Transport;
  readonly log: Logger;
  readonly topics: PipelineTopics;
  readonly scope: RecordScope;
  readonly registry: ParticipantRegistry;
  readonly policy: RoundPolicy;
  readonly groupId: string;
  readonly transactionalId: string;
  readonly updates: UpdatesLog;
  /** The nodes' heartbeats, followed when `rounds.targetAliveNodes` is on. */
  readonly liveness: HeartbeatFollower | undefined;
  /** Reads accepted updates again (robust strategies beyond their memory budget). */
  readonly reread: UpdateLogReader;
  readonly slot: ProducerSlot;
  readonly events: Instrumentation;
  /** updateId → the version that counts it. */
  readonly counted: Map<string, number>;
  version: number;
  weights: Weights;
  round: OpenRound | undefined;
  finished: boolean;
  /** The pipeline's last decided round, and how many rounds this process decided (the summary's figures). */
  decidedRound: number;
  roundsRun: number;
  /** Set when the strategy refused the next round (privacy budget): the pipeline finishes and `done` rejects with it. */
  refusal: FedStreamError | undefined;
}

/**
 * The wiring of an aggregator for `opts`, before any I/O: topics, the participant registry (its own key checked: a
 * missing or unlisted key fails here, at start, with the error of `checkOwnKey`), the round policy, the updates
 * log, and the ids of its consumer group and transactional producer (`<prefix>.aggregator`).
 */
export function aggregatorRun(opts: AggregatorOptions): AggregatorRun {
  const m = opts.manifest;
  const t = opts.transport;
  const topics = pipelineTopics(m);
  // Who may speak for the pipeline, and this aggregator's own key: a missing or unlisted key fails here, at start.
  const registry = opts.registry ?? participantRegistry(m);
  checkOwnKey(registry, opts.signer, registry.aggregatorId, 'aggregator');
  const log = opts.logger.child({ component: 'aggregator', pipeline: topicPrefix(m) });
  return {
    opts, m, t, log, topics, registry,
    scope: { manifest: m, topics, ...(opts.signer ? { signer: opts.signer } : {}) },
    updates: new UpdatesLog(t, topics.updates, m.limits),
    reread: updatesLogReader(t, topics.updates, m.limits, log),
    policy: roundPolicy(m),
    liveness: m.rounds.targetAliveNodes ? new HeartbeatFollower(t, m, topics.telemetry, m.rounds.aliveWindowMs, opts.logger.child({ component: 'aggregator-liveness' })) : undefined,
    groupId: `${topicPrefix(m)}.aggregator`,
    transactionalId: `${topicPrefix(m)}.aggregator`,
    slot: { producer: undefined as unknown as Producer },
    events: opts.instrumentation ?? noInstrumentation,
    counted: new Map(),
    version: -1,
    weights: [],
    round: undefined,
    finished: false,
    decidedRound: 0,
    roundsRun: 0,
    refusal: undefined,
  };
}
