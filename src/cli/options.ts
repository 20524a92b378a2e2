/**
 * Options shared by the command groups (commands/*.ts). They live here, below every command file, so that the
 * command files import this and nothing of each other.
 */
import type { Command } from 'commander';
import { ConfigError, FedStreamError, rootLogger, type Instrumentation, type Service } from '../common/index.ts';
import { applyOverrides, parseManifest, topicPrefix, type Manifest, type Overrides } from '../config/index.ts';
import { loadSigner, type Signer } from '../protocol/index.ts';
import { loadPipeline, type MetricsRole } from '../service/index.ts';

/** Options shared by every command that runs a pipeline. */
export interface PipelineFlags extends Overrides {
  pipeline: string;
}

/** `-p/--pipeline` and the overrides every pipeline command takes (`--kafka`, `--clickhouse`, ...). */
export function withPipelineOptions(cmd: Command, required = true): Command {
  const p = required
    ? cmd.requiredOption('-p, --pipeline <file>', 'pipeline manifest (pipelines/*.yaml)')
    : cmd.option('-p, --pipeline <file>', 'pipeline manifest (pipelines/*.yaml)');
  return p
    .option('--kafka <brokers>', 'Kafka bootstrap brokers, host:port[,host:port] (env FEDSTREAM_KAFKA); without it, the in-memory transport')
    .option('--clickhouse <url>', 'ClickHouse server URL (env FEDSTREAM_CLICKHOUSE); without it, the embedded engine')
    .option('--clickhouse-path <dir>', 'data directory of the embedded ClickHouse (env FEDSTREAM_CLICKHOUSE_PATH)')
    .option('--tenant <id>', 'override the manifest tenant (env FEDSTREAM_TENANT)')
    .option('--rounds <n>', 'override rounds.count (env FEDSTREAM_ROUNDS)')
    .option('--kafka-ca <file>', 'PEM CA bundle for TLS to Kafka; turns TLS on (env FEDSTREAM_KAFKA_CA)')
    .option('--kafka-cert <file>', 'PEM client certificate for mutual TLS (env FEDSTREAM_KAFKA_CERT)')
    .option('--kafka-key <file>', 'PEM client key for mutual TLS (env FEDSTREAM_KAFKA_KEY)')
    .option('--kafka-sasl-mechanism <name>', 'scram-sha-256, scram-sha-512, plain (TLS only) or oauthbearer (env FEDSTREAM_KAFKA_SASL_MECHANISM)')
    .option('--kafka-user <name>', 'SASL user name (env FEDSTREAM_KAFKA_USER)')
    .option('--kafka-password-file <file>', 'file holding the SASL password (env FEDSTREAM_KAFKA_PASSWORD_FILE, or FEDSTREAM_KAFKA_PASSWORD with the password)')
    .option('--clickhouse-user <name>', 'ClickHouse server user (env FEDSTREAM_CLICKHOUSE_USER)')
    .option('--clickhouse-password-file <file>', 'file holding the ClickHouse password (env FEDSTREAM_CLICKHOUSE_PASSWORD_FILE, or FEDSTREAM_CLICKHOUSE_PASSWORD)')
    .option('--clickhouse-ca <file>', 'PEM CA bundle for https to ClickHouse (env FEDSTREAM_CLICKHOUSE_CA)');
}

/** The manifest a pipeline command names, with its flag and environment overrides (its notes logged as warnings). */
export function manifestFrom(flags: PipelineFlags): Manifest {
  const { pipeline, ...overrides } = flags;
  return loadPipeline(pipeline, overrides, { logger: rootLogger() });
}

/**
 * The servers of the flags and environment alone, for commands that need no pipeline (`health`): the override
 * flags applied to a placeholder manifest, so Kafka security and ClickHouse credentials are read exactly as for a
 * pipeline (secrets from files or the environment only).
 */
export function serversFrom(flags: Partial<PipelineFlags>): Manifest {
  const { pipeline: _pipeline, ...overrides } = flags;
  const placeholder = parseManifest({
    apiVersion: 'fedstream/v1', tenant: 'health', name: 'health',
    model: { inputShape: [1], layers: [{ type: 'dense', units: 1 }] },
    data: { source: 'mnist' },
    rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
  }, 'flags');
  return applyOverrides(placeholder, overrides, process.env);
}

/**
 * The participant's private key: `--key-file`, else the file FEDSTREAM_KEY_FILE names, else none (the service then
 * says whether the pipeline needs one). Only a file: a key is never taken from a flag's or variable's value.
 */
export function signerFrom(keyFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Signer | undefined {
  const file = keyFile ?? (env.FEDSTREAM_KEY_FILE || undefined);
  return file ? loadSigner(file) : undefined;
}

/**
 * Refuses to run a standalone service (`aggregator`, `node`, `sink`, `status`, `model export`) on the in-memory
 * transport: each process would have a private log of its own that no other process sees (the aggregator opens
 * round 1 alone, the node waits for topics forever). Only the demo and tests, which run every component in one
 * process, use that transport. Throws TRANSPORT_NOT_CONFIGURED (exit code 2) saying what to pass.
 */
export function requireKafka(m: Manifest, command: string): void {
  if (m.kafka.brokers) return;
  throw new FedStreamError('TRANSPORT_NOT_CONFIGURED',
    `fedstream ${command} needs a Kafka cluster: pass --kafka <host:port[,host:port]> or set FEDSTREAM_KAFKA (or kafka.brokers in the manifest). ` +
    `Without one it would run on a private in-memory transport that no other process can reach (only \`fedstream demo\` runs everything in one process)`,
    { details: { command, pipeline: topicPrefix(m), flag: '--kafka', env: 'FEDSTREAM_KAFKA', field: 'kafka.brokers' } });
}

/** `--metrics-port` and `--metrics-host` of the long-running commands (aggregator, node, sink). */
export interface MetricsFlags {
  metricsPort?: string;
  metricsHost?: string;
}

export function withMetricsOptions(cmd: Command): Command {
  return cmd
    .option('--metrics-port <port>', 'serve Prometheus metrics on http://<metrics-host>:<port>/metrics (0: any free port; env FEDSTREAM_METRICS_PORT; docs/operations.md)')
    .option('--metrics-host <host>', 'address the metrics endpoint listens on (env FEDSTREAM_METRICS_HOST; 0.0.0.0 for a Prometheus on another host)', '127.0.0.1');
}

/** What a command does with its metrics: nothing without `--metrics-port`. */
export interface CommandMetrics {
  instrumentation: Instrumentation | undefined;
  watch(service: Service<unknown>, figures?: () => Record<string, number | undefined>): void;
  close(): Promise<void>;
}

/** Starts the metrics endpoint when `--metrics-port` (or FEDSTREAM_METRICS_PORT) is given. */
export async function metricsFrom(flags: MetricsFlags, o: { role: MetricsRole; manifest: Manifest; nodeId?: string }, env: NodeJS.ProcessEnv = process.env): Promise<CommandMetrics> {
  const raw = flags.metricsPort ?? (env.FEDSTREAM_METRICS_PORT || undefined);
  if (raw === undefined) return { instrumentation: undefined, watch: () => undefined, close: async () => undefined };
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError('--metrics-port', `expected a TCP port number (0..65535), got "${raw}"`);
  const { ProcessMetrics, serveMetrics } = await import('../service/index.ts');
  const metrics = new ProcessMetrics({ role: o.role, pipeline: topicPrefix(o.manifest), ...(o.nodeId === undefined ? {} : { nodeId: o.nodeId }) });
  const host = env.FEDSTREAM_METRICS_HOST && flags.metricsHost === '127.0.0.1' ? env.FEDSTREAM_METRICS_HOST : (flags.metricsHost ?? '127.0.0.1');
  const server = await serveMetrics(metrics, { port: Number(raw), host, logger: rootLogger() });
  return {
    instrumentation: metrics.instrumentation,
    watch: (service, figures) => metrics.watch(o.role, service, figures),
    close: () => server.close(),
  };
}
