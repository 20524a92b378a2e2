/**
 * Prometheus metrics of the long-running processes (aggregator, node, sink), with prom-client: the services emit
 * instrumentation events (common/instrumentation.ts) and know nothing of Prometheus; this file turns the events
 * into counters, gauges and histograms on one registry per process, and serves it on `GET /metrics`
 * (`--metrics-port`). Names follow the Prometheus conventions (https://prometheus.io/docs/practices/naming/):
 * the `fedstream_` prefix, base units (`_seconds`, `_bytes`), `_total` on counters. docs/operations.md lists them.
 *
 * Every series carries the `pipeline` label (`<tenant>.<name>`); a node's carry `node_id` as well.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Instrumentation, InstrumentationEvent, Logger, Service } from '../common/index.ts';
import { ConfigError } from '../common/index.ts';

/** Buckets of the round-scale histograms (decision, round, training): 5 ms to 10 min. */
const SLOW_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Buckets of the per-update fold and the sink's inserts: 100 µs to 10 s. */
const FAST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** prom-client default metrics that break the naming conventions (gauges ending in `_total`). */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export type MetricsRole = 'aggregator' | 'node' | 'sink';

export interface ProcessMetricsOptions {
  role: MetricsRole;
  /** `<tenant>.<name>`, the `pipeline` label of every series. */
  pipeline: string;
  /** A node's id: the `node_id` label of every series of a node process. */
  nodeId?: string;
  /** Also collect prom-client's default process and Node.js metrics (default true). */
  processMetrics?: boolean;
}

/**
 * One process's metrics: its registry, the {@link Instrumentation} its services emit into, and `watch(service)` for
 * the gauges read at scrape time (health, the sink's lag).
 */
export class ProcessMetrics {
  readonly registry = new Registry();
  readonly instrumentation: Instrumentation;
  private readonly watched: Array<{ role: MetricsRole; service: Service<unknown>; figures?: () => Record<string, number | undefined> }> = [];

  constructor(o: ProcessMetricsOptions) {
    this.registry.setDefaultLabels({ pipeline: o.pipeline, ...(o.nodeId === undefined ? {} : { node_id: o.nodeId }) });
    if (o.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry });
      // Gauges named like counters, which `promtool check metrics` flags; `nodejs_active_handles` and
      // `nodejs_active_requests` (by type) and `nodejs_active_resources` carry the same figures.
      for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(name);
    }
    const r = [this.registry];
    const watched = this.watched;
    new Gauge({
      name: 'fedstream_service_healthy', help: '1 while the service does its work (started, not failed, not stopped), else 0.', labelNames: ['service'], registers: r,
      collect() {
        this.reset();
        for (const w of watched) this.set({ service: w.service.name }, w.service.health().healthy ? 1 : 0);
      },
    });
    // Only the role's own series: a node does not export an aggregator's zeros.
    const handler = o.role === 'aggregator' ? aggregatorMetrics(r) : o.role === 'node' ? nodeMetrics(r) : sinkMetrics(r, watched);
    this.instrumentation = { emit: handler };
  }

  /** Reads `service`'s health (and, for the sink, `figures`: lag, bufferedRows, paused) at every scrape. */
  watch(role: MetricsRole, service: Service<unknown>, figures?: () => Record<string, number | undefined>): void {
    this.watched.push({ role, service, ...(figures ? { figures } : {}) });
  }

  /** The exposition text (`text/plain; version=0.0.4`). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

type Handler = (e: InstrumentationEvent) => void;

function aggregatorMetrics(registers: Registry[]): Handler {
  const rounds = new Counter({ name: 'fedstream_aggregator_rounds_total', help: 'Rounds decided by this aggregator, by outcome (closed: a version published; abandoned).', labelNames: ['outcome'], registers });
  const extensions = new Counter({ name: 'fedstream_aggregator_round_extensions_total', help: 'Round deadlines extended because the round was below quorum.', registers });
  const accepted = new Counter({ name: 'fedstream_aggregator_updates_accepted_total', help: 'Updates validated and folded into a round.', registers });
  const rejected = new Counter({ name: 'fedstream_aggregator_updates_rejected_total', help: 'Updates refused, by rejection code (docs/errors.md).', labelNames: ['reason'], registers });
  const fold = new Histogram({ name: 'fedstream_aggregator_fold_seconds', help: 'Time to fold one accepted update into the running aggregation.', buckets: FAST_BUCKETS, registers });
  const decision = new Histogram({ name: 'fedstream_aggregator_decision_seconds', help: 'From a round\'s decision (target, quorum or deadline) to its committed transaction: finish, evaluation, publish.', labelNames: ['outcome'], buckets: SLOW_BUCKETS, registers });
  const duration = new Histogram({ name: 'fedstream_aggregator_round_duration_seconds', help: 'From a round\'s start to its decision.', labelNames: ['outcome'], buckets: SLOW_BUCKETS, registers });
  const round = new Gauge({ name: 'fedstream_aggregator_round', help: 'The open round (0 before the first).', registers });
  const deadline = new Gauge({ name: 'fedstream_aggregator_round_deadline_timestamp_seconds', help: 'Deadline of the open round, Unix time.', registers });
  const target = new Gauge({ name: 'fedstream_aggregator_round_target_updates', help: 'Updates the open round waits for (targetUpdates).', registers });
  const quorum = new Gauge({ name: 'fedstream_aggregator_round_min_updates', help: 'Updates the open round needs at its deadline (minUpdates).', registers });
  const roundAccepted = new Gauge({ name: 'fedstream_aggregator_round_accepted_updates', help: 'Updates accepted so far in the open round.', registers });
  const version = new Gauge({ name: 'fedstream_model_version', help: 'The latest published model version.', registers });
  const versions = new Counter({ name: 'fedstream_model_versions_published_total', help: 'Model versions published by this aggregator (version 0 included).', registers });
  const lastVersion = new Gauge({ name: 'fedstream_model_last_published_timestamp_seconds', help: 'When this aggregator last published a version, Unix time.', registers });
  const accuracy = new Gauge({ name: 'fedstream_model_eval_accuracy_ratio', help: 'Held-out accuracy of the latest version (0..1).', registers });
  for (const outcome of ['closed', 'abandoned']) rounds.inc({ outcome }, 0);
  return (e) => {
    switch (e.type) {
      case 'round.started':
        round.set(e.round);
        deadline.set(e.deadline / 1000);
        target.set(e.targetUpdates);
        quorum.set(e.minUpdates);
        roundAccepted.set(0);
        return;
      case 'update.accepted':
        accepted.inc();
        roundAccepted.inc();
        fold.observe(e.foldSeconds);
        return;
      case 'update.rejected':
        rejected.inc({ reason: e.code });
        return;
      case 'round.extended':
        extensions.inc();
        return;
      case 'round.decided':
        rounds.inc({ outcome: e.outcome });
        decision.observe({ outcome: e.outcome }, e.decisionSeconds);
        duration.observe({ outcome: e.outcome }, e.roundSeconds);
        if (e.evalAccuracy !== undefined && Number.isFinite(e.evalAccuracy)) accuracy.set(e.evalAccuracy);
        return;
      case 'version.recovered':
        version.set(e.version);
        return;
      case 'version.published':
        version.set(e.version);
        versions.inc();
        lastVersion.set(e.at / 1000);
        return;
      default:
    }
  };
}

function nodeMetrics(registers: Registry[]): Handler {
  const training = new Histogram({ name: 'fedstream_node_training_seconds', help: 'Local training time of one round.', buckets: SLOW_BUCKETS, registers });
  const trained = new Counter({ name: 'fedstream_node_rounds_trained_total', help: 'Rounds this node trained and published an update for.', registers });
  const refused = new Counter({ name: 'fedstream_node_rounds_refused_total', help: 'Rounds this node refused (a config it cannot honour), by error code.', labelNames: ['code'], registers });
  const examples = new Counter({ name: 'fedstream_node_examples_trained_total', help: 'Local examples trained on, summed over rounds.', registers });
  const sent = new Counter({ name: 'fedstream_node_update_sent_bytes_total', help: 'Bytes of the update records published (chunks included).', registers });
  const last = new Gauge({ name: 'fedstream_node_last_update_timestamp_seconds', help: 'When this node last published an update, Unix time.', registers });
  const loss = new Gauge({ name: 'fedstream_node_training_loss', help: 'Local training loss of the last round.', registers });
  return (e) => {
    if (e.type === 'node.trained') {
      training.observe(e.trainingSeconds);
      trained.inc();
      examples.inc(e.numExamples);
      sent.inc(e.bytes);
      last.set(Date.now() / 1000);
      if (e.loss !== undefined && Number.isFinite(e.loss)) loss.set(e.loss);
    } else if (e.type === 'node.refused') {
      refused.inc({ code: e.code });
    }
  };
}

function sinkMetrics(registers: Registry[], watched: ProcessMetrics['watched']): Handler {
  const figure = (key: string) => function collect(this: Gauge): void {
    this.reset();
    for (const w of watched) {
      const v = w.role === 'sink' ? w.figures?.()[key] : undefined;
      if (v !== undefined) this.set(v);
    }
  };
  new Gauge({ name: 'fedstream_sink_lag_records', help: 'Records behind the high watermarks of the sink\'s partitions, as of its last fetch.', registers, collect: figure('lag') });
  new Gauge({ name: 'fedstream_sink_buffered_rows', help: 'Rows waiting for the next insert.', registers, collect: figure('bufferedRows') });
  new Gauge({ name: 'fedstream_sink_paused', help: '1 while consumption is paused (ClickHouse failing, or backpressure), else 0.', registers, collect: figure('paused') });
  const insert = new Histogram({ name: 'fedstream_sink_insert_seconds', help: 'From a batch\'s cut to its committed offsets: inserts, dead letters and retries included.', buckets: FAST_BUCKETS, registers });
  const rows = new Counter({ name: 'fedstream_sink_rows_inserted_total', help: 'Rows inserted into ClickHouse, by table (redeliveries included; tables deduplicate).', labelNames: ['table'], registers });
  const records = new Counter({ name: 'fedstream_sink_records_consumed_total', help: 'Kafka records written in committed batches.', registers });
  const batches = new Counter({ name: 'fedstream_sink_batches_total', help: 'Batches inserted and committed.', registers });
  const dead = new Counter({ name: 'fedstream_sink_dead_lettered_total', help: 'Records sent to the dead-letter topic.', registers });
  const retries = new Counter({ name: 'fedstream_sink_insert_retries_total', help: 'Failed insert attempts that were retried.', registers });
  const last = new Gauge({ name: 'fedstream_sink_last_insert_timestamp_seconds', help: 'When the sink last committed a batch, Unix time.', registers });
  return (e) => {
    if (e.type !== 'sink.batch') return;
    insert.observe(e.seconds);
    for (const [table, n] of Object.entries(e.rows)) rows.inc({ table }, n);
    records.inc(e.messages);
    batches.inc();
    dead.inc(e.deadLettered);
    retries.inc(e.retries);
    last.set(Date.now() / 1000);
  };
}

/** The `/metrics` endpoint of a process. */
export interface MetricsServer {
  /** `http://host:port/metrics`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `metrics` on `GET /metrics` at `host:port` (port 0: any free port). Throws ConfigError (CONFIG_INVALID, path
 * `--metrics-port`) for a bad port and when the port is taken (EADDRINUSE).
 */
export async function serveMetrics(metrics: ProcessMetrics, o: { port: number; host?: string; logger?: Logger }): Promise<MetricsServer> {
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65_535) {
    throw new ConfigError('--metrics-port', `${o.port} is not a TCP port (0..65535)`);
  }
  const host = o.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: unknown) => {
        o.logger?.warn({ err }, 'collecting metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new ConfigError('--metrics-port', `cannot listen on ${host}:${o.port} (${err.code ?? err.message})`, { cause: err })));
    server.listen(o.port, host, () => resolve());
  });
  // A scrape endpoint must not keep a finished process alive.
  server.unref();
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`;
  o.logger?.info({ url }, `metrics on ${url}`);
  return {
    url, port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
