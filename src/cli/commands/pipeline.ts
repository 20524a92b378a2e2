/** `fedstream validate`, `topics` and `health`: a pipeline's manifest, its topics, and whether the servers answer. */
import type { Command } from 'commander';
import { rootLogger } from '../../common/index.ts';
import { DEFAULTS } from '../../config/index.ts';
import { runCommand } from '../../service/index.ts';
import { manifestFrom, serversFrom, withPipelineOptions, type PipelineFlags } from '../options.ts';

export function registerPipelineCommands(program: Command): void {
  withPipelineOptions(program.command('validate').description('validate a pipeline manifest and print it with defaults filled in'))
    .action((flags: PipelineFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      // The strategy section is checked by the strategy's own option schema (aggregator/strategies/registry.ts),
      // which also fills its defaults: what the aggregator will run with.
      const { parseStrategySection } = await import('../../aggregator/index.ts');
      process.stdout.write(JSON.stringify({ ...m, strategy: parseStrategySection(m.strategy) }, null, 2) + '\n');
      // The keys themselves are read when a service starts (they may live only where it runs); say now what is missing.
      const { NO_PARTICIPANTS_HELP } = await import('../../protocol/index.ts');
      if (!m.participants) rootLogger().warn({ path: 'participants' }, `the aggregator, nodes and sink will refuse to start: ${NO_PARTICIPANTS_HELP}`);
      else if (m.participants.enrolment === 'open') rootLogger().warn({ path: 'participants.enrolment' }, 'open enrolment: any node may join, and updates are not verified against a registry');
    }));

  withPipelineOptions(program.command('topics').description("create the pipeline's six topics with their configs (idempotent)"))
    .action((flags: PipelineFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      const { compose } = await import('../../service/index.ts');
      const { topicSpecs } = await import('../../protocol/index.ts');
      const wiring = compose({ manifest: m, logger: rootLogger() });
      const transport = await wiring.transport();
      const admin = transport.admin();
      try {
        const created = await admin.createTopics(topicSpecs(m));
        for (const spec of topicSpecs(m)) {
          process.stdout.write(`${created.includes(spec.topic) ? 'created' : 'exists '} ${spec.topic} partitions=${spec.numPartitions} retention.ms=${spec.configs?.['retention.ms']}\n`);
        }
      } finally {
        await admin.close();
        await wiring.close();
      }
    }));

  withPipelineOptions(program.command('health').description("check that Kafka and ClickHouse answer (a pipeline's, or the flags' servers), with the same TLS, SASL and ClickHouse credentials as the pipeline's processes"), false)
    .action((flags: Partial<PipelineFlags>) => runCommand(async () => {
      const m = flags.pipeline ? manifestFrom(flags as PipelineFlags) : serversFrom(flags);
      const { createTransport } = await import('../../transport/index.ts');
      const { analyticsOptionsFrom, createAnalyticsClient } = await import('../../analytics/index.ts');
      // Without --kafka (or a manifest's brokers) the default development broker, never the in-memory transport.
      const transport = createTransport({ kafka: m.kafka.brokers ?? DEFAULTS.kafkaBrokers, logger: rootLogger(), ...(m.kafka.security ? { security: m.kafka.security } : {}) });
      const kafka = await transport.health();
      await transport.close();
      // A client that cannot be made (a TLS misconfiguration) is a failed check, printed like the others.
      const ch = await createAnalyticsClient(analyticsOptionsFrom(m.analytics, rootLogger())).then(
        async (analytics) => { try { return await analytics.health(); } finally { await analytics.close(); } },
        (err: Error) => ({ success: false, detail: err.message }),
      );
      process.stdout.write(`kafka      ${kafka.success ? 'ok  ' : 'FAIL'} ${kafka.detail}\n`);
      process.stdout.write(`clickhouse ${ch.success ? 'ok  ' : 'FAIL'} ${ch.detail}\n`);
      return kafka.success && ch.success ? 0 : 1;
    }));
}
