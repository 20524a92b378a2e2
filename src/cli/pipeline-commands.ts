import type { Command } from 'commander';
import { rootLogger } from '../common/logger.ts';
import { manifestFrom, withPipelineOptions, type PipelineFlags } from './commands.ts';
import { runCommand } from './run.ts';

/** Stops on SIGINT/SIGTERM: the first signal stops gracefully, the second exits at once. */
function onSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    rootLogger().info({ signal: sig }, 'stopping');
    void stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => handler('SIGINT'));
  process.once('SIGTERM', () => handler('SIGTERM'));
}

/**
 * A service that finished its work exits even if a client library left a timer or socket behind (kafkajs
 * reconnect timers after a broker outage do): the timer is unref'd, so it fires only if something else
 * would keep the process alive.
 */
export function exitWhenIdle(graceMs = 2_000): void {
  setTimeout(() => process.exit(process.exitCode ?? 0), graceMs).unref();
}

export function registerPipelineCommands(program: Command): void {
  withPipelineOptions(program.command('aggregator').description('run the aggregator: rounds, validation, model versions (exits 0 after the last round)'))
    .option('--no-evaluate', 'do not evaluate versions on held-out data')
    .action((flags: PipelineFlags & { evaluate: boolean }) => runCommand(async () => {
      const m = manifestFrom(flags);
      const { createTransport } = await import('../transport/index.ts');
      const { createAggregator } = await import('../aggregator/index.ts');
      const logger = rootLogger();
      const transport = createTransport({ kafka: m.kafka.brokers, logger, clientId: `${m.tenant}.${m.name}.aggregator` });
      const agg = await createAggregator({ manifest: m, transport, logger, evaluate: flags.evaluate, fault: process.env.FEDSTREAM_FAULT });
      onSignal(async () => { await agg.stop(); await transport.close(); });
      await agg.start();
      const summary = await agg.done;
      await agg.stop();
      await transport.close();
      process.stdout.write(`aggregator finished: version=${summary.finalVersion} rounds=${summary.rounds}\n`);
      exitWhenIdle();
    }));

  withPipelineOptions(program.command('node').description('run a node: follow rounds, train on local data, publish updates and telemetry'))
    .requiredOption('--node-id <id>', 'this node\'s id (for MNIST pipelines, node-1..node-N picks the partition)')
    .option('--data <file>', 'local data file (CSV, JSON or JSON Lines; docs/node-data.md) instead of the manifest\'s data')
    .option('--backend <name>', 'tfjs backend: tensorflow, wasm or cpu (env FEDSTREAM_TFJS_BACKEND)')
    .option('--heartbeat-ms <ms>', 'heartbeat interval', '5000')
    .action((flags: PipelineFlags & { nodeId: string; data?: string; backend?: 'tensorflow' | 'wasm' | 'cpu'; heartbeatMs: string }) => runCommand(async () => {
      const m = manifestFrom(flags);
      const { createTransport } = await import('../transport/index.ts');
      const { createNode } = await import('../node/index.ts');
      const logger = rootLogger();
      const transport = createTransport({ kafka: m.kafka.brokers, logger, clientId: `${m.tenant}.${m.name}.${flags.nodeId}` });
      const node = await createNode({ manifest: m, transport, nodeId: flags.nodeId, logger, dataPath: flags.data, backend: flags.backend, heartbeatMs: Number(flags.heartbeatMs), fault: process.env.FEDSTREAM_FAULT });
      onSignal(async () => { await node.stop(); await transport.close(); });
      await node.start();
      await node.done;
      await node.stop();
      await transport.close();
      exitWhenIdle();
    }));
}
