import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { packTensors, unpackTensors, weightsSha256, type ModelVersionRecord, type RoundControlRecord, type TelemetryEventRecord, type ModelUpdateRecord } from '../codec/index.ts';
import { ConfigError, FedStreamError, humanDuration, noInstrumentation, type Instrumentation } from '../common/index.ts';
import { retry } from '../common/index.ts';
import type { Manifest, ModelSpec } from '../config/index.ts';
import { topicPrefix } from '../config/index.ts';
import { applyLocalDp } from '../ml/index.ts';
import { decodeRoundConfig, isControlBehind, type RoundConfig } from '../protocol/index.ts';
import { pipelineTopics, waitForTopics, type PipelineTopics } from '../protocol/index.ts';
import { PayloadReader, checkOwnKey, decode, participantRegistry, toRecords, verifyRecord, type ParticipantRegistry, type Signer } from '../protocol/index.ts';
import type { ServiceHealth, Service } from '../common/index.ts';
import type { Consumer, Producer, Transport, TransportMessage } from '../transport/index.ts';
import type { LocalTrainer } from './trainer.ts';

export const SDK_VERSION = '0.1.0';

export interface NodeOptions {
  manifest: Manifest;
  transport: Transport;
  nodeId: string;
  trainer: LocalTrainer;
  logger: Logger;
  /** Interval of heartbeats on the telemetry topic. */
  heartbeatMs?: number;
  /** Fault injection for tests: `kill:mid-train:<round>` kills this process while it trains that round. */
  fault?: string;
  /**
   * This node's private key (protocol/signing.ts `loadSigner`): its updates are signed with it. Required unless the
   * pipeline is in open enrolment.
   */
  signer?: Signer;
  /** The pipeline's participants (default: the manifest's, `participantRegistry`): control and versions are verified against them. */
  registry?: ParticipantRegistry;
  /** Where the node's instrumentation events go (metrics); default nowhere. */
  instrumentation?: Instrumentation;
  /** Called after each published update. */
  onUpdate?: (info: { round: number; updateId: string; numExamples: number; metrics: Record<string, number>; trainingMs: number }) => void;
}

/**
 * A federated node: follows the control and models topics, trains each round it is selected for,
 * and publishes its update and telemetry. Its data never leaves it; only weights do.
 *
 * Each START record's config is decoded into a typed RoundConfig (protocol/round-config.ts), the manifest's
 * `training` section filling the keys it lacks. A config the node cannot honour (an unknown key, a bad value) skips
 * that round: the node logs the error, publishes an ERROR telemetry event naming the key, and waits for the next.
 */
export class FedNode implements Service<void> {
  private readonly m: Manifest;
  private readonly topics: PipelineTopics;
  private readonly log: Logger;
  private readonly registry: ParticipantRegistry;
  /** Control and version records refused as not the aggregator's (forged, unsigned), for health figures. */
  private recordsRefused = 0;
  private producer!: Producer;
  private consumer!: Consumer;
  private readonly reader: PayloadReader;
  private readonly versions = new Map<number, ModelVersionRecord>();
  private control: RoundControlRecord | undefined;
  private readonly trained = new Set<number>();
  private training: Promise<void> | undefined;
  private readonly behind = new Map<string, bigint>();
  private heartbeat: NodeJS.Timeout | undefined;
  private state: 'starting' | 'idle' | 'training' | 'finished' = 'starting';
  private roundsTrained = 0;
  private roundsRefused = 0;
  private lastError: string | undefined;
  /** START configs by round: an EXTEND record carries only its protocol key, and a node joining late trains with its round's START config. */
  private readonly startConfigs = new Map<number, Readonly<Record<string, string>>>();
  private backend = 'unknown';
  private readonly startedAt = Date.now();
  private versionWaiters: Array<() => void> = [];
  private resolveDone!: () => void;
  private rejectDone!: (e: unknown) => void;
  readonly done: Promise<void>;
  private stopped = false;

  constructor(private readonly opts: NodeOptions) {
    this.m = opts.manifest;
    this.topics = pipelineTopics(this.m);
    this.reader = new PayloadReader(this.m.limits);
    this.log = opts.logger.child({ component: 'node', nodeId: opts.nodeId, pipeline: topicPrefix(this.m) });
    // A node without its listed key, or with another participant's, fails here, at start, saying how to fix it.
    this.registry = opts.registry ?? participantRegistry(this.m);
    checkOwnKey(this.registry, opts.signer, opts.nodeId, 'node');
    this.done = new Promise((resolve, reject) => { this.resolveDone = resolve; this.rejectDone = reject; });
    this.done.catch(() => undefined);
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  get name(): string {
    return `node ${this.opts.nodeId}`;
  }

  /** Health as a value: `starting`, `idle`, `training`, `finished` or `stopped`, with the rounds trained and refused. */
  health(): ServiceHealth {
    const state = this.stopped && this.state !== 'finished' ? 'stopped' : this.state;
    const figures: Record<string, number | string> = { roundsTrained: this.roundsTrained, roundsRefused: this.roundsRefused, recordsRefused: this.recordsRefused, backend: this.backend };
    const healthy = !this.stopped && this.state !== 'starting' && this.state !== 'finished';
    const detail = state === 'training' ? 'training a round'
      : `${this.roundsTrained} round${this.roundsTrained === 1 ? '' : 's'} trained${this.roundsRefused > 0 ? `, ${this.roundsRefused} refused (last: ${this.lastError})` : ''}`;
    return { healthy, state, detail, figures };
  }

  async start(): Promise<void> {
    this.producer = this.opts.transport.producer({ idempotent: true });
    await this.producer.connect();
    await this.waitForTopics();
    // A throwaway group: a node reads control and models from the start each time it starts, and
    // a restarted node never waits for its dead predecessor to leave the group.
    this.consumer = this.opts.transport.consumer({ groupId: `${topicPrefix(this.m)}.node.${this.opts.nodeId}.${randomUUID()}`, readCommitted: true, fromBeginning: true });
    await this.consumer.connect();
    await this.consumer.subscribe([this.topics.control, this.topics.models]);
    await this.consumer.run({
      eachBatch: async (batch, ctx) => {
        for (const msg of batch.messages) {
          this.onMessage(msg);
          ctx.resolveOffset(msg.offset);
        }
        this.caughtUp(batch.topic, batch.partition, BigInt(batch.messages.at(-1)?.offset ?? '-1') + 1n);
        this.consider();
      },
      onPosition: (p) => {
        this.caughtUp(p.topic, p.partition, BigInt(p.nextOffset));
        this.consider();
      },
    });
    this.state = 'idle';
    const every = this.opts.heartbeatMs ?? 5_000;
    this.heartbeat = setInterval(() => { void this.sendHeartbeat(); }, every);
    this.heartbeat.unref();
    void this.sendHeartbeat();
    this.consider();
  }

  /**
   * Nodes do not create topics (the aggregator or `fedstream topics` does, with their configs): a node that
   * starts first waits for them. Then it notes where control and models end, to know when it has caught up.
   */
  /** Waits for the pipeline's topics, then notes where control and models end, to know when it has caught up. */
  private async waitForTopics(): Promise<void> {
    const offsets = await waitForTopics(this.opts.transport, [this.topics.control, this.topics.models], { logger: this.log, isStopped: () => this.stopped });
    for (const [topic, partitions] of offsets) {
      for (const o of partitions) {
        if (BigInt(o.high) > BigInt(o.low)) this.behind.set(`${topic}/${o.partition}`, BigInt(o.high));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.training?.catch(() => undefined);
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
  }

  private caughtUp(topic: string, partition: number, next: bigint): void {
    const key = `${topic}/${partition}`;
    const end = this.behind.get(key);
    if (end !== undefined && next >= end) this.behind.delete(key);
  }

  private onMessage(msg: TransportMessage): void {
    if (msg.topic === this.topics.models) {
      const got = this.reader.accept(msg);
      for (const f of got.failures) this.log.warn({ err: f.error, offset: msg.offset }, 'unreadable model version; skipped');
      if (!got.payload) return;
      try {
        const v = decode('ModelVersion', got.payload.bytes);
        const verdict = verifyRecord(this.registry, 'ModelVersion', v, got.payload.bytes, got.payload.headers);
        if (!verdict.ok) return this.refuseRecord(msg, verdict.code, `model version ${v.version}: ${verdict.reason}`);
        this.versions.set(Number(v.version), v);
        // Keep the newest few versions only: a node trains from the latest.
        for (const k of [...this.versions.keys()].sort((a, b) => a - b).slice(0, -3)) this.versions.delete(k);
        const waiters = this.versionWaiters;
        this.versionWaiters = [];
        waiters.forEach((w) => w());
      } catch (err) {
        this.log.warn({ err, offset: msg.offset }, 'unreadable model version; skipped');
      }
      return;
    }
    // Control records are chunked like any payload when large (a long selectedNodes list): reassembled first.
    const got = this.reader.accept(msg);
    for (const f of got.failures) this.log.warn({ err: f.error, offset: msg.offset }, 'unreadable round control; skipped');
    if (!got.payload) return;
    try {
      const bytes = got.payload.bytes;
      const c = decode('RoundControl', bytes);
      const verdict = verifyRecord(this.registry, 'RoundControl', c, bytes, got.payload.headers);
      if (!verdict.ok) return this.refuseRecord(msg, verdict.code, `${c.kind} of round ${c.round}: ${verdict.reason}`);
      if (isControlBehind(this.control, c)) return this.refuseRecord(msg, 'replayed', `${c.kind} of round ${c.round} replayed after ${this.control!.kind} of round ${this.control!.round}`);
      if (c.kind === 'START') {
        this.startConfigs.set(Number(c.round), c.config);
        for (const k of [...this.startConfigs.keys()].sort((a, b) => a - b).slice(0, -3)) this.startConfigs.delete(k);
      }
      this.control = c;
    } catch (err) {
      this.log.warn({ err, offset: msg.offset }, 'unreadable round control; skipped');
    }
  }

  /**
   * A control or version record the aggregator did not sign: never acted on. A node may not write the audit or
   * dead-letter topics, so its audit trail is this log line (shaped like an audit event) and the health figure.
   */
  private refuseRecord(msg: TransportMessage, code: string, reason: string): void {
    this.recordsRefused++;
    this.log.warn({ audit: 'MESSAGE_REFUSED', actor: `node ${this.opts.nodeId}`, code, source: `${msg.topic}/${msg.partition}/${msg.offset}`, recordsRefused: this.recordsRefused }, `record refused, not acted on: ${reason}`);
  }

  /** Decides what to do with the latest control record, once the node has read the log up to where it was at start. */
  private consider(): void {
    if (this.stopped || this.behind.size > 0 || !this.control) return;
    const c = this.control;
    if (c.kind === 'FINISH') {
      if (this.state !== 'finished' && !this.training) this.finish();
      return;
    }
    if (c.kind !== 'START' && c.kind !== 'EXTEND') return;
    const round = Number(c.round);
    if (this.trained.has(round) || this.training) return;
    if (c.selectedNodes.length > 0 && !c.selectedNodes.includes(this.opts.nodeId)) return;
    if (Date.now() > Number(c.deadline)) return;
    this.trained.add(round);
    let config: RoundConfig;
    try {
      config = this.roundConfig(c);
    } catch (err) {
      // Never thrown out of here: this runs in the consumer's batch handler, and a bad config must not stop the node.
      this.refuse(round, err instanceof ConfigError ? err : new ConfigError(`round ${round} config`, String(err), { cause: err }));
      return;
    }
    this.training = this.trainRound(c, config)
      .catch((err) => this.log.error({ err, round }, 'training round failed'))
      .finally(() => {
        this.training = undefined;
        this.consider();
      });
  }

  /**
   * The typed config of a START or EXTEND record's round. An EXTEND record carries only its `extension` count (a
   * round-protocol key): its round trains with that round's START config, or the manifest's when the node never saw it.
   */
  private roundConfig(c: RoundControlRecord): RoundConfig {
    const round = Number(c.round);
    const map = c.kind === 'EXTEND' ? (this.startConfigs.get(round) ?? {}) : c.config;
    const { epochs, batchSize, learningRate, optimizer } = this.m.training;
    return decodeRoundConfig(map, { epochs, batchSize, learningRate, optimizer }, roundConfigPath(round));
  }

  /** A round whose config this node cannot honour: not trained, and said so in the log and on the telemetry topic. */
  private refuse(round: number, err: ConfigError): void {
    this.roundsRefused++;
    this.lastError = err.message;
    const prefix = `${roundConfigPath(round)}.`;
    const key = err.path.startsWith(prefix) ? err.path.slice(prefix.length) : err.path;
    this.log.error({ err, round, key }, `round ${round} refused: ${err.message}`);
    (this.opts.instrumentation ?? noInstrumentation).emit({ type: 'node.refused', nodeId: this.opts.nodeId, round, code: err.code });
    const labels = { errorCode: err.code, key, path: err.path, action: 'round-skipped' };
    void this.sendTelemetry('ERROR', round, {}, labels, `round ${round} not trained: ${err.message}`)
      .catch((e) => this.log.warn({ err: e, round }, 'error event not sent'));
  }

  private finish(): void {
    this.state = 'finished';
    this.log.info({ roundsTrained: this.roundsTrained }, 'pipeline finished');
    void this.sendHeartbeat().finally(() => this.resolveDone());
  }

  private async waitForVersion(v: number): Promise<ModelVersionRecord> {
    for (;;) {
      const got = this.versions.get(v);
      if (got) return got;
      if (this.stopped) throw new FedStreamError('TRANSPORT_CLOSED', 'node stopped');
      await new Promise<void>((resolve) => this.versionWaiters.push(resolve));
    }
  }

  private async trainRound(c: RoundControlRecord, config: RoundConfig): Promise<void> {
    const round = Number(c.round);
    const baseVersion = Number(c.baseVersion);
    this.state = 'training';
    const version = await this.waitForVersion(baseVersion);
    const base = unpackTensors(version.tensors);
    if (weightsSha256(base) !== version.weightsSha256) {
      throw new FedStreamError('CODEC_CHECKSUM_MISMATCH', `model version ${baseVersion} does not match its sha256; not training on it`);
    }
    const spec = JSON.parse(version.modelSpec) as ModelSpec;
    // `event` is the line's stable name for programs that read the log (the message is for people and may change).
    this.log.info({ event: 'training', round, baseVersion, ...config }, `round ${round}: training from version ${baseVersion}`);
    if (this.opts.fault === `kill:mid-train:${round}`) {
      this.log.warn({ round }, 'fault injection: SIGKILL while training');
      process.kill(process.pid, 'SIGKILL');
    }
    const result = await this.opts.trainer.train({ spec, weights: base, config, seed: round * 7919 + hashSeed(this.opts.nodeId) });
    this.backend = result.backend;
    // Local DP (privacy.local, Flower's LocalDpMod): the change is clipped and noised here, before it leaves the node.
    const local = this.m.privacy?.local;
    if (local) {
      const dp = applyLocalDp(result.weights, base, local);
      result.weights = dp.weights;
      this.log.info({ round, norm: dp.norm, clippingNorm: local.clippingNorm, noiseStd: dp.std, epsilon: local.epsilon, delta: local.delta }, 'local DP: update clipped and noised');
    }
    // Random, 128 bits: nobody can compute it ahead and send it first to have this update refused as a duplicate. A
    // node that restarts and trains the round again sends another id; the aggregator takes one update per node and round.
    const updateId = randomUUID();
    const update: ModelUpdateRecord = {
      updateId,
      tenant: this.m.tenant,
      pipeline: this.m.name,
      nodeId: this.opts.nodeId,
      round,
      baseVersion,
      numExamples: result.numExamples,
      tensors: packTensors(result.weights, { dtype: 'float32' }),
      metrics: result.metrics,
      trainingMs: Math.round(result.trainingMs),
      createdAt: Date.now(),
      sdkVersion: SDK_VERSION,
      backend: result.backend,
    };
    const records = toRecords(this.topics.updates, 'ModelUpdate', update, this.opts.nodeId, this.m.topics.chunkSizeBytes, {}, this.opts.signer, this.m.limits.maxPayloadBytes);
    // Retriable failures (a broker restarting) are retried until the round's deadline: a retry resends the same
    // records (same id), the producer is idempotent, and the aggregator counts one update per id and per node and round.
    await retry(() => this.producer.send(records), {
      retries: 30,
      initialDelayMs: 250,
      maxDelayMs: 5_000,
      onRetry: (err, attempt, delayMs) => this.log.warn({ err, attempt, delayMs, round }, 'publishing the update failed; retrying'),
    });
    await this.sendTelemetry('TRAINING', round, { ...result.metrics, numExamples: result.numExamples, trainingMs: result.trainingMs }, { updateId, baseVersion: String(baseVersion) });
    this.roundsTrained++;
    this.state = 'idle';
    this.log.info({ event: 'update.published', round, updateId, numExamples: result.numExamples, loss: result.metrics.loss, accuracy: result.metrics.accuracy, ms: result.trainingMs },
      trainedLine(round, baseVersion, result.numExamples, result.trainingMs, result.metrics));
    (this.opts.instrumentation ?? noInstrumentation).emit({
      type: 'node.trained', nodeId: this.opts.nodeId, round, trainingSeconds: result.trainingMs / 1000, numExamples: result.numExamples,
      bytes: records.reduce((n, r) => n + (r.value?.length ?? 0), 0),
      ...(result.metrics.loss === undefined ? {} : { loss: result.metrics.loss }), ...(result.metrics.accuracy === undefined ? {} : { accuracy: result.metrics.accuracy }),
    });
    this.opts.onUpdate?.({ round, updateId, numExamples: result.numExamples, metrics: result.metrics, trainingMs: result.trainingMs });
  }

  private async sendHeartbeat(): Promise<void> {
    if (this.stopped && this.state !== 'finished') return;
    const mem = process.memoryUsage();
    await this.sendTelemetry('HEARTBEAT', null, { uptimeS: (Date.now() - this.startedAt) / 1000, roundsTrained: this.roundsTrained, rssMb: mem.rss / 1048576 },
      // Which process reports rssMb: several nodes in one process (the demo) share it, and a report shows it once.
      { state: this.state, backend: this.backend, pid: String(process.pid), host: hostname() })
      .catch((err) => this.log.warn({ err }, 'heartbeat not sent'));
  }

  private async sendTelemetry(kind: TelemetryEventRecord['kind'], round: number | null, metrics: Record<string, number>, labels: Record<string, string>, message: string | null = null): Promise<void> {
    const e: TelemetryEventRecord = {
      tenant: this.m.tenant,
      pipeline: this.m.name,
      nodeId: this.opts.nodeId,
      kind,
      round,
      eventTime: Date.now(),
      metrics,
      labels,
      message,
    };
    await this.producer.send(toRecords(this.topics.telemetry, 'TelemetryEvent', e, this.opts.nodeId, this.m.topics.chunkSizeBytes, {}, undefined, this.m.limits.maxPayloadBytes));
  }
}

/** Where a round config's errors point: `round 3 config.optimizer`. */
function roundConfigPath(round: number): string {
  return `round ${round} config`;
}

function hashSeed(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The one human line per trained round: `round 3: trained on 600 examples from version 2 in 1.2 s (loss 0.312, accuracy 0.905); update published`. */
export function trainedLine(round: number, baseVersion: number, numExamples: number, trainingMs: number, metrics: Record<string, number>): string {
  const parts = ['loss', 'accuracy'].filter((k) => typeof metrics[k] === 'number' && Number.isFinite(metrics[k])).map((k) => `${k} ${metrics[k]!.toFixed(3)}`);
  return `round ${round}: trained on ${numExamples} examples from version ${baseVersion} in ${humanDuration(trainingMs)}${parts.length ? ` (${parts.join(', ')})` : ''}; update published`;
}
