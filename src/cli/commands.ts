import type { Command } from 'commander';
import { applyOverrides, loadManifest, type Manifest, type Overrides } from '../config/manifest.ts';
import { DEFAULTS } from '../config/defaults.ts';
import { rootLogger } from '../common/logger.ts';
import { runCommand } from './run.ts';
import { registerPipelineCommands } from './pipeline-commands.ts';
import { registerAnalyticsCommands } from './analytics-commands.ts';
import { registerKafkaCommands } from './kafka-commands.ts';
import { registerDemoCommands } from './demo-commands.ts';

/** Options shared by every command that runs a pipeline. */
export interface PipelineFlags extends Overrides {
  pipeline: string;
}

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

export function manifestFrom(flags: PipelineFlags): Manifest {
  const { pipeline, ...overrides } = flags;
  return applyOverrides(loadManifest(pipeline), overrides);
}

export function registerCommands(program: Command): void {
  withPipelineOptions(program.command('validate').description('validate a pipeline manifest and print it with defaults filled in'))
    .action((flags: PipelineFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      process.stdout.write(JSON.stringify(m, null, 2) + '\n');
    }));

  withPipelineOptions(program.command('topics').description("create the pipeline's six topics with their configs (idempotent)"))
    .action((flags: PipelineFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      const { createTransport } = await import('../transport/index.ts');
      const { topicSpecs } = await import('../protocol/topics.ts');
      const transport = createTransport({ kafka: m.kafka.brokers, logger: rootLogger() });
      const admin = transport.admin();
      try {
        const created = await admin.createTopics(topicSpecs(m));
        for (const spec of topicSpecs(m)) {
          process.stdout.write(`${created.includes(spec.topic) ? 'created' : 'exists '} ${spec.topic} partitions=${spec.numPartitions} retention.ms=${spec.configs?.['retention.ms']}\n`);
        }
      } finally {
        await admin.close();
        await transport.close();
      }
    }));

  program.command('health')
    .description('check that Kafka and ClickHouse answer')
    .option('--kafka <brokers>', 'Kafka bootstrap brokers (env FEDSTREAM_KAFKA)', process.env.FEDSTREAM_KAFKA ?? DEFAULTS.kafkaBrokers)
    .option('--clickhouse <url>', 'ClickHouse server URL (env FEDSTREAM_CLICKHOUSE)', process.env.FEDSTREAM_CLICKHOUSE)
    .option('--clickhouse-path <dir>', 'embedded ClickHouse data directory', DEFAULTS.embeddedClickhousePath)
    .action((flags: { kafka: string; clickhouse?: string; clickhousePath: string }) => runCommand(async () => {
      const { createTransport } = await import('../transport/index.ts');
      const { createAnalyticsClient } = await import('../analytics/index.ts');
      const transport = createTransport({ kafka: flags.kafka, logger: rootLogger() });
      const kafka = await transport.health();
      await transport.close();
      const analytics = await createAnalyticsClient({ url: flags.clickhouse, path: flags.clickhousePath, logger: rootLogger() });
      const ch = await analytics.health();
      await analytics.close();
      process.stdout.write(`kafka      ${kafka.success ? 'ok  ' : 'FAIL'} ${kafka.detail}\n`);
      process.stdout.write(`clickhouse ${ch.success ? 'ok  ' : 'FAIL'} ${ch.detail}\n`);
      return kafka.success && ch.success ? 0 : 1;
    }));

  registerPipelineCommands(program);
  registerAnalyticsCommands(program);
  registerKafkaCommands(program);
  registerDemoCommands(program);
}
