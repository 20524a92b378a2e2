/**
 * The composition root: a manifest (with its overrides) becomes a transport per component, one analytics client,
 * and the services (aggregator, node, sink). The CLI and the demo compose through here and nowhere else.
 *
 * The factories stay with their folders (createAggregator, createNode, Sink); this file only decides what each
 * gets. Heavy modules (tfjs, kafkajs, ClickHouse) load when a component is asked for, so that `fedstream
 * validate` stays quick.
 */
import type { Aggregator, AggregatorSummary, CreateAggregatorOptions } from '../aggregator/index.ts';
import type { AnalyticsClient, Sink, SinkOptions } from '../analytics/index.ts';
import type { Instrumentation, Logger } from '../common/index.ts';
import { ConfigError } from '../common/index.ts';
import { applyOverrides, loadManifest, manifestNotes, topicPrefix, type Manifest, type Overrides } from '../config/index.ts';
import { countParameters } from '../ml/index.ts';
import type { CreateNodeOptions, FedNode, LocalTrainer } from '../node/index.ts';
import type { ParticipantRegistry, ParticipantRole, Signer } from '../protocol/index.ts';
import type { MemoryCluster, Transport } from '../transport/index.ts';
import { asService, type ComponentService } from './lifecycle.ts';

/**
 * Loads a manifest file and applies flag and environment overrides (given as such, or chosen after a look at the
 * file); what loading had to say without failing (legacy keys moved, ...) goes to the log as warnings.
 */
export function loadPipeline(
  file: string,
  overrides: Overrides | ((file: Manifest) => Overrides),
  o: { logger: Logger; env?: NodeJS.ProcessEnv },
): Manifest {
  const m = loadManifest(file);
  for (const note of manifestNotes(m)) o.logger.warn({ manifest: file }, note);
  return checkRecordSizes(applyOverrides(m, typeof overrides === 'function' ? overrides(m) : overrides, o.env ?? process.env));
}

/**
 * Refuses, when the manifest is loaded, a pipeline whose records could never be read: a ModelVersion or ModelUpdate
 * carries every weight as float32, so a model of P parameters makes records of more than 4 × P bytes, and a record
 * above `limits.maxPayloadBytes` is refused by every reader. (Every record kind is chunked to `topics.chunkSizeBytes`;
 * records whose size depends on what happens at run time, a control record's node list or an event's labels, are
 * refused by their writer instead: RECORD_TOO_LARGE.) Returns the manifest.
 */
export function checkRecordSizes(m: Manifest): Manifest {
  let parameters: number;
  try {
    parameters = countParameters(m.model);
  } catch {
    return m; // a model the layer registry cannot size is refused where the model is built, with its own message
  }
  const bytes = 4 * parameters;
  if (bytes > m.limits.maxPayloadBytes) {
    throw new ConfigError('limits.maxPayloadBytes', `the model has ${parameters} parameters, so each ModelVersion and ModelUpdate carries at least ${bytes} bytes of float32 weights, above limits.maxPayloadBytes (${m.limits.maxPayloadBytes}) that every reader enforces: no version or update could be read; raise limits.maxPayloadBytes (and limits.maxPendingBytes) or use a smaller model`, {
      details: { parameters, bytes, limit: m.limits.maxPayloadBytes },
    });
  }
  return m;
}

export interface CompositionOptions {
  manifest: Manifest;
  logger: Logger;
  /**
   * The in-memory log that this composition's transports share when the manifest names no Kafka brokers
   * (default: a new one, this composition's own). Pass one to let two compositions see the same topics.
   */
  memory?: MemoryCluster;
  /**
   * The private keys of the participants this process runs (`participant` is a node id or the aggregator's id):
   * the CLI's `--key-file`, or the demo's ephemeral keys. A service given its own `signer` uses that one.
   */
  signers?: (participant: string, role: ParticipantRole) => Signer | undefined;
}

export interface AggregatorServiceOptions {
  /** The aggregator's private key (default: from `CompositionOptions.signers`). */
  signer?: Signer;
  evaluate?: boolean;
  fault?: string;
  /** Fence a running aggregator of the pipeline instead of refusing to start (`--take-over`). */
  takeOver?: boolean;
  strategy?: CreateAggregatorOptions['strategy'];
  onVersion?: CreateAggregatorOptions['onVersion'];
  /** Where its instrumentation events go (service/metrics.ts). */
  instrumentation?: Instrumentation;
}

export interface NodeServiceOptions {
  /** The node's private key (default: from `CompositionOptions.signers`). */
  signer?: Signer;
  dataPath?: string;
  backend?: CreateNodeOptions['backend'];
  heartbeatMs?: number;
  fault?: string;
  onUpdate?: CreateNodeOptions['onUpdate'];
  /** A trainer of the caller's own (the demo's worker pool) instead of tfjs over the node's local data. */
  trainer?: LocalTrainer;
  /** Where its instrumentation events go (service/metrics.ts). */
  instrumentation?: Instrumentation;
}

export interface SinkServiceOptions extends Pick<SinkOptions, 'batchRows' | 'batchMs' | 'onFlush' | 'instrumentation'> {
  /** `done` resolves once the pipeline's FINISH is consumed and written; otherwise the sink runs until stopped. */
  untilFinished?: boolean;
}

/** What one process runs for one pipeline: its transports, its analytics client, its services. */
export class Composition {
  readonly manifest: Manifest;
  readonly logger: Logger;
  private memory: MemoryCluster | undefined;
  private readonly transports = new Set<Transport>();
  private analyticsClient: Promise<AnalyticsClient> | undefined;
  private readonly signers: CompositionOptions['signers'];
  private participants: ParticipantRegistry | undefined;

  constructor(o: CompositionOptions) {
    this.manifest = o.manifest;
    this.logger = o.logger;
    this.memory = o.memory;
    this.signers = o.signers;
  }

  /**
   * The pipeline's participant registry, read once (keys files included). Throws ConfigError when the manifest has
   * no `participants` section, saying how to add keys or opt in to open enrolment.
   */
  async registry(): Promise<ParticipantRegistry> {
    if (!this.participants) {
      const { participantRegistry } = await import('../protocol/index.ts');
      this.participants = participantRegistry(this.manifest);
      const d = this.participants.describe();
      if (d.enrolment === 'open') this.logger.warn({ participants: d }, 'open enrolment: any node may join, and updates are not verified against a registry (docs/security.md)');
    }
    return this.participants;
  }

  /** True when the manifest names Kafka brokers; else the transports share this composition's memory log. */
  get kafka(): boolean {
    return Boolean(this.manifest.kafka.brokers);
  }

  /**
   * A transport for one component; `role` names the Kafka client (`<tenant>.<pipeline>.<role>`). It is closed
   * with the composition (or by the service it was made for).
   */
  async transport(role?: string): Promise<Transport> {
    const { createTransport, MemoryCluster } = await import('../transport/index.ts');
    if (!this.kafka) this.memory ??= new MemoryCluster();
    const t = createTransport({
      kafka: this.manifest.kafka.brokers,
      logger: this.logger,
      ...(this.manifest.kafka.security ? { security: this.manifest.kafka.security } : {}),
      ...(role === undefined ? {} : { clientId: `${topicPrefix(this.manifest)}.${role}` }),
      ...(this.memory ? { memory: this.memory } : {}),
    });
    this.transports.add(t);
    return t;
  }

  /** The manifest's ClickHouse (server or embedded), with the schema applied; one client per composition. */
  analytics(): Promise<AnalyticsClient> {
    this.analyticsClient ??= (async () => {
      const m = this.manifest;
      const { analyticsOptionsFrom, applySchema, createAnalyticsClient, retentionVariables } = await import('../analytics/index.ts');
      const client = await createAnalyticsClient(analyticsOptionsFrom(m.analytics, this.logger));
      try {
        await applySchema(client, { database: m.analytics.database, variables: retentionVariables(m.retention), logger: this.logger });
      } catch (err) {
        await client.close();
        throw err;
      }
      return client;
    })();
    // A failed open is not kept: a later call tries again.
    this.analyticsClient.catch(() => { this.analyticsClient = undefined; });
    return this.analyticsClient;
  }

  /** The aggregator as a service (not started); its transport closes when it stops. */
  async aggregator(o: AggregatorServiceOptions = {}): Promise<ComponentService<AggregatorSummary, Aggregator>> {
    const { createAggregator } = await import('../aggregator/index.ts');
    const registry = await this.registry();
    const signer = o.signer ?? this.signers?.(registry.aggregatorId, 'aggregator');
    const transport = await this.transport('aggregator');
    const aggregator = await createAggregator({
      manifest: this.manifest,
      transport,
      logger: this.logger,
      ...(o.evaluate === undefined ? {} : { evaluate: o.evaluate }),
      ...(o.fault === undefined ? {} : { fault: o.fault as CreateAggregatorOptions['fault'] }),
      ...(o.takeOver ? { takeOver: true } : {}),
      ...(o.strategy ? { strategy: o.strategy } : {}),
      ...(o.onVersion ? { onVersion: o.onVersion } : {}),
      ...(o.instrumentation ? { instrumentation: o.instrumentation } : {}),
      ...(signer ? { signer } : {}),
      registry,
    });
    return asService('aggregator', aggregator, { release: () => this.release(transport) });
  }

  /** A node as a service (not started): tfjs over its local data, or the given trainer; its transport closes when it stops. */
  async node(nodeId: string, o: NodeServiceOptions = {}): Promise<ComponentService<void, FedNode>> {
    const { createNode, FedNode } = await import('../node/index.ts');
    const registry = await this.registry();
    const signer = o.signer ?? this.signers?.(nodeId, 'node');
    const transport = await this.transport(nodeId);
    const common = { manifest: this.manifest, transport, nodeId, logger: this.logger, heartbeatMs: o.heartbeatMs, fault: o.fault, onUpdate: o.onUpdate, signer, registry, instrumentation: o.instrumentation };
    const node = o.trainer
      ? new FedNode({ ...common, trainer: o.trainer })
      : await createNode({ ...common, dataPath: o.dataPath, backend: o.backend });
    return asService(`node ${nodeId}`, node, { release: () => this.release(transport) });
  }

  /** The ClickHouse sink as a service (not started); its transport closes when it stops, the analytics client with the composition. */
  async sink(o: SinkServiceOptions = {}): Promise<ComponentService<void, Sink>> {
    const { Sink } = await import('../analytics/index.ts');
    const registry = await this.registry();
    const analytics = await this.analytics();
    const transport = await this.transport('sink');
    const sink = new Sink({
      manifest: this.manifest,
      transport,
      analytics,
      logger: this.logger,
      registry,
      ...(o.batchRows === undefined ? {} : { batchRows: o.batchRows }),
      ...(o.batchMs === undefined ? {} : { batchMs: o.batchMs }),
      ...(o.onFlush ? { onFlush: o.onFlush } : {}),
      ...(o.instrumentation ? { instrumentation: o.instrumentation } : {}),
    });
    // untilFinished() is asked once the sink runs (it reads the control topic, which exists by then).
    let finished!: { resolve: () => void; reject: (err: unknown) => void };
    const done = new Promise<void>((resolve, reject) => { finished = { resolve, reject }; });
    done.catch(() => undefined);
    const lifecycle = {
      done,
      start: async () => {
        await sink.start();
        if (o.untilFinished) sink.untilFinished().then(finished.resolve, finished.reject);
      },
      stop: () => sink.stop(),
      health: () => sink.health(),
    };
    const service = asService<void, typeof lifecycle>('sink', lifecycle, {
      release: () => this.release(transport),
      figures: () => {
        const s = sink.metrics();
        return { records: s.messages, rows: s.rowsTotal, batches: s.batches, lag: s.lag };
      },
    });
    return Object.assign(service, { component: sink });
  }

  /** Closes every transport this composition made and its analytics client. */
  async close(): Promise<void> {
    await Promise.all([...this.transports].map((t) => this.release(t)));
    const analytics = this.analyticsClient;
    this.analyticsClient = undefined;
    await (await analytics?.catch(() => undefined))?.close().catch(() => undefined);
  }

  private async release(t: Transport): Promise<void> {
    if (!this.transports.delete(t)) return;
    await t.close();
  }
}

/** The composition root for one pipeline in one process. */
export function compose(o: CompositionOptions): Composition {
  return new Composition(o);
}
