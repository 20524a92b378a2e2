/** `fedstream sink` and `fedstream report compliance|training`: the analytics side of the CLI. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { EmbeddedEndpoint, SinkMetrics } from '../../analytics/index.ts';
import { ConfigError, rootLogger } from '../../common/index.ts';
import { topicPrefix } from '../../config/index.ts';
import { runCommand, runService } from '../../service/index.ts';
import { manifestFrom, metricsFrom, requireKafka, withMetricsOptions, withPipelineOptions, type MetricsFlags, type PipelineFlags } from '../options.ts';

interface SinkFlags extends PipelineFlags, MetricsFlags {
  untilFinished?: boolean;
  servePort?: string;
  /** commander's `--no-serve` sets `serve: false`. */
  serve?: boolean;
  batchRows: string;
  batchMs: string;
  progressMs: string;
}

interface ReportFlags extends PipelineFlags {
  modelVersion?: string;
  version?: string;
  out?: string;
  format: string;
}

function positiveInt(value: string, flag: string, min = 1): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) throw new ConfigError(flag, `expected a whole number >= ${min}, got "${value}"`);
  return n;
}

function progressLine(prefix: string, metrics: SinkMetrics): string {
  const tables = Object.entries(metrics.rows).filter(([, n]) => n > 0).map(([t, n]) => `${t} ${n.toLocaleString('en-US')}`).join(', ');
  const state = metrics.state === 'running' ? (metrics.paused ? 'paused' : 'running') : metrics.state;
  return `sink ${prefix}: ${state}, ${metrics.messages.toLocaleString('en-US')} records, ${metrics.rowsTotal.toLocaleString('en-US')} rows` +
    `${tables ? ` (${tables})` : ''}, ${metrics.batches} batches, ${metrics.deadLettered} dead-lettered, ${metrics.retries} retries, lag ${metrics.lag}` +
    `${metrics.finishSeen ? ', pipeline finished' : ''}${metrics.lastError && metrics.state === 'retrying' ? `, last error: ${metrics.lastError}` : ''}\n`;
}

export function registerAnalyticsCommands(program: Command): void {
  withMetricsOptions(withPipelineOptions(program.command('sink').description("copy the pipeline's telemetry, audit, rounds and update/version metadata into ClickHouse (consumer group <tenant>.<pipeline>.sink)")))
    .option('--until-finished', "exit once the pipeline's FINISH has been consumed and every topic is drained and written")
    .option('--batch-rows <n>', 'insert a batch at this many rows', '10000')
    .option('--batch-ms <ms>', 'or when its first record is this old', '1000')
    .option('--progress-ms <ms>', 'print a progress line this often (0: never)', '5000')
    .option('--serve-port <port>', 'embedded ClickHouse only: the 127.0.0.1 port to serve it on over HTTP for other processes (default: any free port, written to <clickhouse-path>/fedstream-endpoint.json)')
    .option('--no-serve', 'embedded ClickHouse only: do not serve it to other processes')
    .action((flags: SinkFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      const batchRows = positiveInt(flags.batchRows, '--batch-rows');
      const batchMs = positiveInt(flags.batchMs, '--batch-ms');
      const progressMs = positiveInt(flags.progressMs, '--progress-ms', 0);
      const logger = rootLogger();
      const { compose } = await import('../../service/index.ts');
      requireKafka(m, 'sink');
      const wiring = compose({ manifest: m, logger });
      const prefix = topicPrefix(m);
      let timer: NodeJS.Timeout | undefined;
      let endpoint: EmbeddedEndpoint | undefined;
      const metrics = await metricsFrom(flags, { role: 'sink', manifest: m });
      try {
        const analytics = await wiring.analytics();
        // The embedded engine is this process's alone: serve it so that report, status, health and Grafana can query it.
        if (analytics.kind === 'embedded' && flags.serve !== false && !analytics.servedBy) {
          const { serveEmbedded } = await import('../../analytics/index.ts');
          endpoint = await serveEmbedded(analytics, { logger, ...(flags.servePort ? { port: positiveInt(flags.servePort, '--serve-port', 0) } : {}) });
        }
        const service = await wiring.sink({ batchRows, batchMs, untilFinished: flags.untilFinished ?? false, ...(metrics.instrumentation ? { instrumentation: metrics.instrumentation } : {}) });
        const sink = service.component;
        metrics.watch(service, () => {
          const s = sink.metrics();
          return { lag: s.lag, bufferedRows: s.bufferedRows, paused: s.paused ? 1 : 0 };
        });
        let started = false;
        await runService(service, {
          logger,
          // The first signal flushes and stops; the command then reports as if the pipeline had finished.
          exitAfterFirst: false,
          onSignal: (signal) => process.stderr.write(`fedstream sink: ${signal}: flushing and stopping\n`),
          onStarted: () => {
            started = true;
            process.stdout.write(`sink ${prefix}: consuming ${sink.sourceTopics.join(', ')} into ${analytics.kind === 'embedded' ? `embedded ClickHouse at ${analytics.location}` : analytics.location}, database ${analytics.database}\n`);
            if (endpoint) process.stdout.write(`sink ${prefix}: serving that ClickHouse to other processes (report, status, health, any ClickHouse client) at ${endpoint.url}\n`);
            if (progressMs > 0) {
              timer = setInterval(() => process.stdout.write(progressLine(prefix, sink.metrics())), progressMs);
              timer.unref();
            }
          },
        }).catch((err: unknown) => {
          // A sink that fails to start is an error; one that fails later says so in its health below.
          if (!started) throw err;
        });
        if (timer) clearInterval(timer);
        process.stdout.write(progressLine(prefix, sink.metrics()));
        const health = sink.health();
        return health.state === 'stopped' ? 0 : 1;
      } finally {
        if (timer) clearInterval(timer);
        await endpoint?.close().catch(() => undefined);
        await metrics.close();
        await wiring.close().catch(() => undefined);
      }
    }));

  const report = program.command('report').description('write a report from ClickHouse (Markdown and a self-contained HTML file)');

  const reportCommand = (name: 'compliance' | 'training', description: string): Command => {
    const cmd = withPipelineOptions(report.command(name).description(description));
    // Not `--version`: the root program's -V/--version option takes that name wherever it appears.
    if (name === 'compliance') {
      cmd.option('--version <n>', 'the model version to report on, with its ancestors (default: the latest)');
      cmd.option('--model-version <n>', 'same as --version');
    }
    return cmd
      .option('--out <dir>', 'write <dir>/' + name + '.md and/or .html instead of printing the Markdown')
      .option('--format <format>', 'md, html or both (with --out)', 'both')
      .action((flags: ReportFlags) => runCommand(async () => {
        const m = manifestFrom(flags);
        if (!['md', 'html', 'both'].includes(flags.format)) throw new ConfigError('--format', `expected md, html or both, got "${flags.format}"`);
        const chosen = flags.version ?? flags.modelVersion;
        const version = chosen === undefined ? undefined : positiveInt(chosen, flags.version !== undefined ? '--version' : '--model-version', 0);
        const logger = rootLogger();
        const { assertPipelineHasData, complianceReport, trainingReport } = await import('../../analytics/index.ts');
        const { compose } = await import('../../service/index.ts');
        const wiring = compose({ manifest: m, logger });
        const analytics = await wiring.analytics();
        // An empty report for a typo in the tenant or pipeline, or another database, would look like a pipeline that did nothing.
        await assertPipelineHasData(analytics, m).catch(async (err: unknown) => { await wiring.close(); throw err; });
        // The models topic is read back only from Kafka: a fresh process's in-memory log is empty.
        const transport = name === 'compliance' && wiring.kafka ? await wiring.transport('report') : undefined;
        try {
          const r = name === 'compliance'
            ? await complianceReport({ analytics, manifest: m, logger, ...(version === undefined ? {} : { version }), ...(transport ? { transport } : {}) })
            : await trainingReport({ analytics, manifest: m, logger });
          if (!flags.out) {
            process.stdout.write(flags.format === 'html' ? r.html : r.markdown);
            return 0;
          }
          const dir = resolve(flags.out);
          mkdirSync(dir, { recursive: true });
          const base = name === 'compliance' && version !== undefined ? `${name}-v${version}` : name;
          const written: string[] = [];
          if (flags.format !== 'html') written.push(join(dir, `${base}.md`));
          if (flags.format !== 'md') written.push(join(dir, `${base}.html`));
          for (const f of written) writeFileSync(f, f.endsWith('.md') ? r.markdown : r.html);
          for (const f of written) process.stdout.write(`${f}\n`);
          return 0;
        } finally {
          await wiring.close();
        }
      }));
  };
  reportCommand('compliance', 'lineage (which nodes and updates shaped each version), audit trail, retention in force, and the sha256 chain of versions');
  reportCommand('training', 'convergence and participation of the pipeline, with plots');
}
