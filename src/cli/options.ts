/**
 * Options shared by the command groups (commands/*.ts). They live here, below every command file, so that the
 * command files import this and nothing of each other.
 */
import type { Command } from 'commander';
import { rootLogger } from '../common/index.ts';
import type { Manifest, Overrides } from '../config/index.ts';
import { loadPipeline } from '../service/index.ts';

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
    .option('--rounds <n>', 'override rounds.count (env FEDSTREAM_ROUNDS)');
}

/** The manifest a pipeline command names, with its flag and environment overrides (its notes logged as warnings). */
export function manifestFrom(flags: PipelineFlags): Manifest {
  const { pipeline, ...overrides } = flags;
  return loadPipeline(pipeline, overrides, { logger: rootLogger() });
}
