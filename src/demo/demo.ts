/**
 * `fedstream demo`: the whole pipeline on one machine, with the code of the real services.
 *
 * One aggregator, the ClickHouse sink and N nodes, composed by the composition root (service/wiring.ts)
 * as the CLI composes them, run in this process over the in-memory transport (or a Kafka cluster with `--kafka`),
 * writing to embedded ClickHouse under `<out>/clickhouse` (or a server with `--clickhouse`). The nodes'
 * protocol logic stays on the main thread; their training runs on a pool of worker threads, one per core
 * ({@link WorkerPoolTrainer}). At the end: `<out>/summary.json`, `<out>/report.html` built from
 * ClickHouse queries once the sink has ingested every version, and one summary line on stdout.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStrategySection } from '../aggregator/index.ts';
import type { AnalyticsClient } from '../analytics/index.ts';
import { ConfigError, FedStreamError, type Logger, rootLogger } from '../common/index.ts';
import { DEFAULTS, parseManifest, type Manifest } from '../config/index.ts';
import { loadTfRuntime, nodeIdOf } from '../ml/index.ts';
import { ephemeralParticipants } from '../protocol/index.ts';
import { SDK_VERSION } from '../node/index.ts';
import { compose, loadPipeline, type Service } from '../service/index.ts';
import { buildDemoReport } from './report.ts';
import { ProgressDisplay } from './progress.ts';
import { summaryLine, type DemoSettings, type DemoSummary, type RoundSummary } from './summary.ts';
import { WorkerPoolTrainer } from './worker-trainer.ts';

/** The manifest the demo runs when `--pipeline` is not given. */
export const DEFAULT_DEMO_PIPELINE = fileURLToPath(new URL('../../pipelines/mnist-fedavg.yaml', import.meta.url));

export interface DemoOptions {
  nodes?: number;
  rounds?: number;
  /** IID partition instead of the manifest's (non-IID label shards by default). */
  iid?: boolean;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  /** Seeds the data split and partition, the initial weights and the node selection. */
  seed?: number;
  /** Digits used for training and held out (default: the manifest's). Small values make quick runs. */
  trainExamples?: number;
  testExamples?: number;
  /** Output directory (default `./fedstream-demo`). */
  out?: string;
  /** Kafka bootstrap brokers; default the in-memory transport. */
  kafka?: string;
  /** ClickHouse server URL; default embedded ClickHouse under `<out>/clickhouse`. */
  clickhouse?: string;
  /** A pipeline manifest instead of pipelines/mnist-fedavg.yaml. */
  pipeline?: string;
  /** Training worker threads (default one per core). */
  workers?: number;
  /** Node heartbeat interval (default 2 s). */
  heartbeatMs?: number;
  logger: Logger;
  /** Where progress goes (default process.stderr). */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** `auto` (default): redrawn in place on a terminal, plain lines otherwise. */
  progress?: 'auto' | 'tty' | 'plain' | 'none';
  /** Environment for manifest overrides (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface DemoPlan {
  manifest: Manifest;
  pipelineFile: string;
  out: string;
  nodeIds: string[];
}

function positiveInt(v: number | undefined, flag: string): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new ConfigError(flag, `expected a positive integer, got ${v}`);
}

/** The manifest and node ids a demo run uses: the pipeline file, then the flags; validated. */
export function planDemo(o: Omit<DemoOptions, 'logger'> & { logger?: Logger }): DemoPlan {
  positiveInt(o.nodes, '--nodes');
  positiveInt(o.rounds, '--rounds');
  positiveInt(o.epochs, '--epochs');
  positiveInt(o.batchSize, '--batch-size');
  positiveInt(o.workers, '--workers');
  if (o.seed !== undefined && (!Number.isInteger(o.seed) || o.seed < 0)) throw new ConfigError('--seed', `expected a non-negative integer, got ${o.seed}`);
  const pipelineFile = resolve(o.pipeline ?? DEFAULT_DEMO_PIPELINE);
  const out = resolve(o.out ?? DEFAULTS.demoOutDir);
  const env = o.env ?? process.env;
  let m = loadPipeline(pipelineFile, (file) => ({
    ...(o.rounds !== undefined ? { rounds: o.rounds } : {}),
    ...(o.epochs !== undefined ? { epochs: o.epochs } : {}),
    ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
    ...(o.learningRate !== undefined ? { learningRate: o.learningRate } : {}),
    ...(o.kafka !== undefined ? { kafka: o.kafka } : {}),
    ...(o.clickhouse !== undefined ? { clickhouse: o.clickhouse } : {}),
    ...(o.nodes !== undefined && file.data.source === 'mnist' ? { nodes: o.nodes } : {}),
  }), { logger: o.logger ?? rootLogger(), env });
  const raw = structuredClone(m) as Manifest;
  if (raw.data.source === 'mnist') {
    if (o.iid) raw.data.partition = 'iid';
    if (o.seed !== undefined) raw.data.seed = o.seed;
    if (o.trainExamples !== undefined) raw.data.trainExamples = o.trainExamples;
    if (o.testExamples !== undefined) raw.data.testExamples = o.testExamples;
  } else if (o.iid || o.trainExamples !== undefined || o.testExamples !== undefined) {
    throw new ConfigError(o.iid ? '--iid' : '--train-examples', 'only applies to data.source mnist');
  }
  if (o.seed !== undefined) raw.model.seed = o.seed;
  const nodeCount = raw.data.source === 'mnist' ? raw.data.nodes : (o.nodes ?? raw.rounds.targetUpdates);
  // A round waits for the selected nodes: C·N of them (all of them at C = 1), never more than there are.
  const selected = Math.max(1, Math.round(parseStrategySection(raw.strategy).fraction * nodeCount));
  if (raw.rounds.targetUpdates !== selected) {
    raw.rounds.targetUpdates = selected;
    raw.rounds.minUpdates = Math.min(raw.rounds.minUpdates, selected);
  }
  // Real services keep what earlier runs wrote: a fresh pipeline name keeps this run's topics and rows apart.
  if (raw.kafka.brokers || raw.analytics.clickhouse) raw.name = `${raw.name}-${Date.now().toString(36)}`.slice(0, 63);
  raw.analytics = { ...raw.analytics, path: resolve(out, 'clickhouse') };
  m = parseManifest(raw, 'demo manifest');
  return { manifest: m, pipelineFile, out, nodeIds: Array.from({ length: nodeCount }, (_, i) => nodeIdOf(i)) };
}

/** The files a run writes into `<out>`; only these are removed when a run starts. */
export const DEMO_OUTPUTS = ['clickhouse', 'summary.json', 'report.html', 'report.md'] as const;

/** Removes a previous run's outputs from `out` (chdb data of an earlier run would mix into this run's report). */
export function clearOutputs(out: string): void {
  for (const name of DEMO_OUTPUTS) rmSync(resolve(out, name), { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
}

async function waitFor<T>(what: string, timeoutMs: number, poll: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const got = await poll();
    if (got !== undefined) return got;
    if (Date.now() > until) throw new FedStreamError('ANALYTICS_UNAVAILABLE', `timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Rows of this pipeline in a table, counted the way the reports count them (FINAL). */
async function countRows(analytics: AnalyticsClient, table: string, m: Manifest): Promise<number> {
  const rs = await analytics.client.query({
    query: `SELECT count() AS n FROM ${table} FINAL WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}`,
    query_params: { tenant: m.tenant, pipeline: m.name },
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{ n: string | number }>();
  return Number(rows[0]?.n ?? 0);
}

/** Runs the demo (`plan`: from {@link planDemo} of the same options); resolves to what summary.json holds. */
export async function runDemo(o: DemoOptions, plan: DemoPlan = planDemo(o)): Promise<DemoSummary> {
  const started = Date.now();
  const { out, nodeIds } = plan;
  // The demo's participants live and die with this process: fresh Ed25519 keys for the aggregator and each node,
  // listed in this run's manifest, so that every record is signed and verified as in a deployed pipeline.
  const team = ephemeralParticipants(plan.manifest, nodeIds);
  const m = team.manifest;
  const log = o.logger.child({ component: 'demo' });
  clearOutputs(out);

  const progress = new ProgressDisplay(
    { stream: o.progressStream ?? process.stderr, ...(o.progress === 'tty' ? { tty: true } : o.progress === 'plain' ? { tty: false } : {}), silent: o.progress === 'none' },
    { rounds: m.rounds.count, expected: m.rounds.targetUpdates },
  );
  progress.start();

  // Workers start first: loading TypeScript and tfjs in each takes a second or two, in parallel with the rest.
  const pool = new WorkerPoolTrainer({ manifest: m, logger: o.logger, ...(o.workers ? { size: o.workers } : {}) });
  // The run's own composition: one transport per component (over one in-memory log without --kafka).
  const wiring = compose({ manifest: m, logger: o.logger, signers: (id) => team.signerFor(id) });
  let analytics: AnalyticsClient | undefined;
  let aggregator: Service | undefined;
  let sink: Awaited<ReturnType<typeof wiring.sink>> | undefined;
  const nodes: Service[] = [];
  let failed: ((err: unknown) => void) | undefined;
  const failure = new Promise<never>((_, reject) => { failed = reject; });
  failure.catch(() => undefined);

  try {
    analytics = await wiring.analytics();
    const tf = await loadTfRuntime();
    const backend = await tf.initBackend(undefined, { logger: o.logger });
    await pool.ready();

    const perRound: RoundSummary[] = [];
    let firstRoundAt: number | undefined;
    let lastVersionAt = 0;
    const aggregatorService = await wiring.aggregator({
      onVersion: (v, info) => {
        const version = Number(v.version);
        if (version === 0) {
          firstRoundAt = Date.now();
          progress.roundStarted(1);
          return;
        }
        lastVersionAt = Date.now();
        const accuracy = v.metrics.eval_accuracy ?? null;
        const loss = v.metrics.eval_loss ?? null;
        perRound.push({ round: info.round, version, accuracy, loss, participants: info.participants, ms: info.ms });
        progress.versionPublished({ round: info.round, version, participants: info.participants, ms: info.ms, ...(accuracy === null ? {} : { accuracy }), ...(loss === null ? {} : { loss }) });
        if (info.round < m.rounds.count) progress.roundStarted(info.round + 1);
      },
    });
    aggregator = aggregatorService;
    await aggregator.start();
    sink = await wiring.sink({ batchMs: 500 });
    await sink.start();

    for (const nodeId of nodeIds) {
      const trainer = pool.trainerFor(nodeId);
      nodes.push(await wiring.node(nodeId, {
        heartbeatMs: o.heartbeatMs ?? 2_000,
        // A node logs a failed round and waits for the next; in the demo a training failure ends the run.
        trainer: { train: (input) => trainer.train(input).catch((err: unknown) => { failed?.(err); throw err; }) },
        onUpdate: (u) => progress.updatePublished(u.round),
      }));
    }
    await Promise.all(nodes.map((n) => n.start()));

    const result = await Promise.race([aggregatorService.done, failure]);
    await Promise.race([Promise.all(nodes.map((n) => n.done)), failure]);
    log.info({ ...result }, 'pipeline finished; waiting for the sink');

    // The report reads ClickHouse only: wait until the sink has everything, every version in particular.
    progress.phase('ingesting');
    await Promise.race([sink.component.untilFinished(), failure]);
    const a = analytics;
    await waitFor(`ClickHouse to hold the ${result.versions} model versions`, 60_000, async () => ((await countRows(a, 'model_versions', m)) >= result.versions ? true : undefined));
    for (const n of nodes) await n.stop();
    await sink.stop();
    const clickhouseRows = sink.component.metrics().rows;

    progress.phase('report');
    const report = await buildDemoReport({ analytics, manifest: m, finalVersion: result.finalVersion });
    const reportFile = resolve(out, 'report.html');
    writeFileSync(reportFile, report.html);
    writeFileSync(resolve(out, 'report.md'), report.markdown);

    const last = perRound.at(-1);
    const settings: DemoSettings = {
      pipeline: relativeOrAbsolute(plan.pipelineFile),
      tenant: m.tenant,
      name: m.name,
      nodes: nodeIds.length,
      partition: m.data.source === 'mnist' ? m.data.partition : 'file',
      ...(m.data.source === 'mnist' ? { shardsPerNode: m.data.shardsPerNode, testExamples: m.data.testExamples, ...(m.data.trainExamples !== undefined ? { trainExamples: m.data.trainExamples } : {}) } : {}),
      rounds: m.rounds.count,
      epochs: m.training.epochs,
      batchSize: m.training.batchSize,
      learningRate: m.training.learningRate,
      optimizer: m.training.optimizer,
      fraction: parseStrategySection(m.strategy).fraction,
      targetUpdates: m.rounds.targetUpdates,
      minUpdates: m.rounds.minUpdates,
      dataSeed: m.data.source === 'mnist' ? m.data.seed : null,
      modelSeed: m.model.seed,
      model: m.model,
      transport: m.kafka.brokers ? 'kafka' : 'memory',
      ...(m.kafka.brokers ? { kafka: m.kafka.brokers } : {}),
      clickhouse: { kind: analytics.kind, location: analytics.location, database: analytics.database },
      workers: pool.size,
      backend: tf.backendInfo()?.name ?? backend,
      out,
    };
    const summary: DemoSummary = {
      finalAccuracy: last?.accuracy ?? null,
      finalLoss: last?.loss ?? null,
      rounds: perRound.length,
      versions: result.versions,
      finalVersion: result.finalVersion,
      durationMs: 0,
      trainingMs: firstRoundAt === undefined ? 0 : lastVersionAt - firstRoundAt,
      nodes: nodeIds.length,
      perRound,
      settings,
      workers: pool.stats(),
      clickhouseRows,
      files: { summary: 'summary.json', report: 'report.html', ...(analytics.kind === 'embedded' ? { clickhouse: 'clickhouse' } : {}) },
      startedAt: new Date(started).toISOString(),
      fedstreamVersion: SDK_VERSION,
    };
    summary.durationMs = Date.now() - started;
    writeFileSync(resolve(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    progress.phase('done');
    return summary;
  } finally {
    progress.stop();
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
    await aggregator?.stop().catch(() => undefined);
    await sink?.stop().catch(() => undefined);
    await pool.close().catch(() => undefined);
    await wiring.close().catch(() => undefined);
  }
}

function relativeOrAbsolute(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel.startsWith('..') || rel === '' ? file : rel;
}

export { summaryLine };

/** True when `out` holds a previous run's outputs (the CLI says it clears them). */
export function hasPreviousRun(out: string): boolean {
  return DEMO_OUTPUTS.some((name) => existsSync(resolve(out, name)));
}
